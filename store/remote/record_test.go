package remote

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/netsentry/netsentry/store"
)

func sampleTick() []store.Sample {
	return []store.Sample{
		{Name: "netsentry_engine_packets_total", Labels: []store.Label{{Name: "queue", Value: "0"}}, Value: 12345},
		{Name: "netsentry_up", Value: 1},
		{Name: "odd", Labels: []store.Label{{Name: "a", Value: "x y,z=1"}, {Name: "b", Value: "ü\n"}}, Value: -0.125},
		{Name: "nan", Value: math.NaN()},
		{Name: "inf", Value: math.Inf(-1)},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	in := sampleTick()
	rec, _ := appendRecord(nil, nil, 1700000000123, in)
	n, ts, _, err := recordHeader(rec)
	if err != nil || n != uint64(len(in)) || ts != 1700000000123 {
		t.Fatalf("header: %d %d %v", n, ts, err)
	}
	ts, out, _, err := decodeRecord(rec, nil, nil)
	if err != nil || ts != 1700000000123 {
		t.Fatalf("decode: %d %v", ts, err)
	}
	if len(out) != len(in) {
		t.Fatalf("decoded %d samples, want %d", len(out), len(in))
	}
	for i := range in {
		a, b := in[i], out[i]
		if a.Name != b.Name || !reflect.DeepEqual(a.Labels, b.Labels) || math.Float64bits(a.Value) != math.Float64bits(b.Value) {
			t.Errorf("sample %d: got %+v, want %+v", i, b, a)
		}
	}
	// An empty tick is a record too.
	rec, _ = appendRecord(nil, nil, -5, nil)
	if ts, out, _, err := decodeRecord(rec, nil, nil); err != nil || ts != -5 || len(out) != 0 {
		t.Errorf("empty tick: %d %v %v", ts, out, err)
	}
}

// Every damaged record is an error, never a panic or a partial result.
func TestRecordDamaged(t *testing.T) {
	rec, _ := appendRecord(nil, nil, 42, sampleTick())
	for cut := 0; cut < len(rec); cut++ {
		if _, out, _, err := decodeRecord(rec[:cut], nil, nil); err == nil || len(out) != 0 || !errors.Is(err, errRecord) {
			t.Fatalf("record cut at %d of %d: %d samples, %v", cut, len(rec), len(out), err)
		}
	}
	bad := append([]byte{}, rec...)
	bad[0] = 9
	if _, _, _, err := decodeRecord(bad, nil, nil); err == nil {
		t.Error("unknown format decoded")
	}
	// More samples promised than the body holds.
	more, _ := appendRecord(nil, nil, 42, sampleTick()[:2])
	more[1] = 3
	if _, _, _, err := decodeRecord(more, nil, nil); err == nil {
		t.Error("a record promising 3 samples of 2 decoded")
	}
}

func FuzzDecodeRecord(f *testing.F) {
	rec, _ := appendRecord(nil, nil, 1700000000000, sampleTick())
	f.Add(rec)
	rec, _ = appendRecord(nil, nil, 0, nil)
	f.Add(rec)
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, out, _, err := decodeRecord(b, nil, nil)
		if err != nil {
			if len(out) != 0 {
				t.Fatalf("error with %d samples", len(out))
			}
			return
		}
		// What decodes encodes back to a record that decodes the same.
		again, _ := appendRecord(nil, nil, ts, out)
		ts2, out2, _, err := decodeRecord(again, nil, nil)
		if err != nil || ts2 != ts || len(out2) != len(out) {
			t.Fatalf("re-encoded record: %v", err)
		}
		for i := range out {
			if out[i].Name != out2[i].Name || !reflect.DeepEqual(out[i].Labels, out2[i].Labels) ||
				math.Float64bits(out[i].Value) != math.Float64bits(out2[i].Value) {
				t.Fatalf("sample %d changed", i)
			}
		}
	})
}
