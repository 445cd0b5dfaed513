// Package plots draws mollify's figures with gonum/plot: density heatmaps,
// 2-D histograms, score fields (∇ₓ log p as arrows), learning curves and
// tiled figures saved as PNG. It works on plain Go values; callers copy
// tensors to the host first.
package plots
