// Package configs embeds the YAML run configurations of this folder, so a
// binary can load them by name from any working directory
// (config.Load("realnvp_mog", nil)). Files on disk under ./configs take
// precedence over these copies.
package configs

import "embed"

// FS holds every *.yaml file of this folder.
//
//go:embed *.yaml
var FS embed.FS
