package train

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/mollify/mollify/train/tensorboard"
)

// TensorBoard is a second sink of Metric: with Options.TensorBoard
// (run.tensorboard) every numeric value of every metrics record becomes a
// scalar tagged <kind>/<key> (train/loss, eval/bpd, fid/fid) at the
// record's step, and Image adds a PNG the run saved. Each RunUntil writes
// a new event file in the run folder.

// openBoard starts this RunUntil's event file. A trainer that already
// has steps done is a resumed run: SessionLog START at the next step
// tells TensorBoard to drop what the killed run logged past the
// checkpoint, as metrics.jsonl is cut back to it.
func (t *Trainer) openBoard() error {
	if !t.Options.TensorBoard || t.board != nil {
		return nil
	}
	w, err := tensorboard.NewWriter(t.Dir)
	if err == nil && t.step > 0 {
		if err = w.SessionStart(int64(t.step)+1, time.Now()); err == nil {
			err = w.Flush()
		}
		if err != nil {
			w.Close()
		}
	}
	if err != nil {
		return boardError(err)
	}
	t.board = w
	return nil
}

func (t *Trainer) closeBoard() error {
	if t.board == nil {
		return nil
	}
	err := t.board.Close()
	t.board = nil
	return boardError(err)
}

func boardError(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("train: TensorBoard event file: %w (set run.tensorboard=false to run without event files)", err)
}

// boardScalars writes the numbers of a metrics record, in key order.
// Booleans count as 0 and 1 (train/mollified shows where the phase ends);
// strings and other values are left to metrics.jsonl.
func (t *Trainer) boardScalars(kind string, values map[string]any, now time.Time) error {
	if t.board == nil {
		return nil
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var err error
	for _, k := range keys {
		if v, ok := number(values[k]); ok {
			err = errors.Join(err, t.board.Scalar(kind+"/"+k, int64(t.step), v, now))
		}
	}
	return boardError(errors.Join(err, t.board.Flush()))
}

// Image adds a PNG the run saved (a sample grid) to the event file under
// tag at the current step; without run.tensorboard, or outside Run, it
// does nothing.
func (t *Trainer) Image(tag string, png []byte) error {
	if t.board == nil {
		return nil
	}
	if err := t.board.PNG(tag, int64(t.step), png, time.Now()); err != nil {
		return boardError(err)
	}
	return boardError(t.board.Flush())
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint:
		return float64(x), true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}
