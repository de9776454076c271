// Package lint holds the repository-wide checks that are tests: the import
// rules between NetSentry's packages (see ../../../shared/STYLE.md, "The layout").
package lint
