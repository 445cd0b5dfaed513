// Package tensorboard writes TensorBoard event files: scalars and PNG
// images that `tensorboard --logdir` shows. It is cgo-free and small
// because no maintained Go writer exists.
//
// Conventions:
//   - A file is a sequence of TFRecords: a little-endian uint64 length,
//     the masked CRC32C of those 8 bytes, the data, the masked CRC32C of
//     the data. mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8.
//   - Each record is one serialised tensorboard.Event (event.proto). The
//     first has file_version "brain.Event:2"; the others carry one
//     Summary.Value each: simple_value (float32) for a scalar, image for a
//     PNG. The few fields are encoded by number with protowire; the
//     numbers are those of tensorboard/compat/proto/{event,summary}.proto.
//   - A Writer creates a new file, events.out.tfevents.<unix seconds,
//     10 digits>.<hostname>[.<n>], never appending to an old one: a
//     resumed run opens a new file beside the old ones and TensorBoard
//     merges the files of a folder, read in name order.
//   - SessionStart writes SessionLog START at a step: TensorBoard's
//     reader then drops the events of earlier files at that step and
//     after (a killed run's steps past its checkpoint).
//   - Wall times are seconds since the Unix epoch, given by the caller.
//   - Errors are returned, never panics; after a failed write the Writer
//     keeps returning that error.
package tensorboard
