// Package torchfile reads PyTorch weight files (torch.save of a state dict)
// into Go without Python: both the legacy format (before PyTorch 1.6, and
// _use_new_zipfile_serialization=False since) and the zip format.
//
// The legacy format is a sequence of pickles: the magic number
// 0x1950a86a20f9469cfc6c, the protocol version (1001), a sys_info dict, the
// object itself with every storage replaced by a persistent id
// ('storage', storage_type, key, location, numel, view_metadata), and the
// sorted list of storage keys; then each storage's data as an int64 element
// count and little-endian bytes. The zip format holds the object pickle in
// <name>/data.pkl and each storage in <name>/data/<key>.
//
// The pickles are run by github.com/nlpodyssey/gopickle, with this
// package's hooks for torch: persistent ids resolve to storages (legacy
// storage views included), and torch._utils._rebuild_tensor(_v2),
// _rebuild_parameter and _rebuild_from_type_v2 rebuild tensors over them;
// any other class becomes an opaque object. Tensors are copied out of
// their storages in C order, honouring sizes, strides and storage offsets,
// so views (transposes, slices) come out right. (gopickle's own pytorch
// package is not used: it panics on legacy storage views and keeps
// storages as typed slices, not bytes.)
//
// Nested dicts are flattened with dotted names (a checkpoint's
// {"model": {"w": t}} gives "model.w"); non-tensor leaves are skipped. A
// pickled nn.Module is rejected: save model.state_dict() instead.
package torchfile
