// Package config holds mollify's run configuration: one typed struct per
// concern (run, data, model, optim, mollification, eval, output,
// distributed), read by viper from YAML with environment and --set
// overrides, and validated
// before anything is built.
//
// Sources, lowest precedence first:
//  1. Default(): the paper's toy experiment (REAL-NVP on the 2-D mixture of
//     Gaussians, Gaussian mollification with the sigmoid schedule);
//  2. the YAML file named to Load (a path, configs/NAME[.yaml] under the
//     working directory, or the copy of configs/ embedded in the binary);
//  3. MOLLIFY_* environment variables: the key upper-cased, dots as
//     underscores (MOLLIFY_OPTIM_LR=1e-3, MOLLIFY_OPTIM_BETAS=0.9,0.99);
//  4. --set key=value overrides (value parsed as YAML: 1e-3, true, [0.9, 0.99]).
//
// A key that is not part of the schema is an error naming the key, whichever
// source it came from. Validate reports every problem at once, each naming
// the key, its value and what is allowed.
//
// Where a setting lives: a model family's settings type, its defaults
// (DefaultGlow…), its checks and the values the model derives from it
// (Glow.CouplingKernels, VAE.DecoderLayers…) are one file here:
// realnvp2d.go, realnvp.go, glow.go, vae.go (vae, beta_vae, iwae, vae_iaf,
// hvae) and nvae.go. flows and vaes take that type as it is, and the
// models package only picks the family by model.name, so a new setting is
// one field, its default and its check in that file, plus the YAML.
// Validate reports every problem of the whole config; each family's
// Validate reports those of its settings alone, for constructors.
//
// The package has no tensor dependency (go list -deps ./config shows no
// gotch): it only describes the run, and tools that read configs need not
// link libtorch.
// Iterations count optimizer steps (the paper's epochs are converted in the
// YAML files under configs/, with the arithmetic in comments).
package config
