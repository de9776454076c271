// Package container holds the OCI image's build files (Containerfile,
// passwd, group; `make image` assembles the context) and the test that
// builds the image and runs its entrypoint. It has no code of its own.
package container
