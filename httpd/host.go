package httpd

import (
	"os"

	"go.yaml.in/yaml/v3"
)

var (
	osHostname    = os.Hostname
	yamlUnmarshal = yaml.Unmarshal
)
