package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
	"go.yaml.in/yaml/v3"
)

// ResolvedName is the file Save writes into a run folder.
const ResolvedName = "config.yaml"

// YAML renders the resolved config (every key, in schema order). Load reads
// it back to an equal Config.
func (c *Config) YAML() ([]byte, error) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# mollify resolved config (source: %s)\n", c.Source)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("config: encoding YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: encoding YAML: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteFile writes the resolved config to path, atomically (a temporary
// file renamed over it), so a crash never leaves half a config behind.
func (c *Config) WriteFile(path string) error {
	b, err := c.YAML()
	if err != nil {
		return err
	}
	if err := renameio.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("config: writing %s: %w", path, err)
	}
	return nil
}

// Save writes the resolved config as runDir/config.yaml, creating runDir if
// needed, and returns the file's path.
func (c *Config) Save(runDir string) (string, error) {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return "", fmt.Errorf("config: creating run folder: %w", err)
	}
	path := filepath.Join(runDir, ResolvedName)
	return path, c.WriteFile(path)
}
