package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// pcapInfo is what a walk over a classic pcap file's record headers finds.
type pcapInfo struct {
	packets   uint64
	wireBytes uint64 // sum of the records' original lengths
}

// pcapOrder returns the byte order of a classic pcap file from its magic
// number (microsecond or nanosecond timestamps).
func pcapOrder(h []byte) (binary.ByteOrder, error) {
	switch binary.LittleEndian.Uint32(h) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		return binary.LittleEndian, nil
	case 0xd4c3b2a1, 0x4d3cb2a1:
		return binary.BigEndian, nil
	}
	return nil, fmt.Errorf("not a classic pcap file (magic %x): convert it with editcap -F pcap", h[:4])
}

// walkPcap reads a classic pcap file record by record; fn, if not nil, gets
// each 16-byte record header (which it may change) and the record's data.
func walkPcap(r io.Reader, fn func(hdr, data []byte, order binary.ByteOrder) error) (pcapInfo, error) {
	var info pcapInfo
	br := bufio.NewReaderSize(r, 1<<20)
	var fh [24]byte
	if _, err := io.ReadFull(br, fh[:]); err != nil {
		return info, fmt.Errorf("read pcap header: %w", err)
	}
	order, err := pcapOrder(fh[:])
	if err != nil {
		return info, err
	}
	if fn != nil {
		if err := fn(fh[:], nil, order); err != nil {
			return info, err
		}
	}
	var rh [16]byte
	data := make([]byte, 0, 1<<16)
	for {
		if _, err := io.ReadFull(br, rh[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return info, nil
			}
			return info, fmt.Errorf("read record %d: %w", info.packets+1, err)
		}
		incl := order.Uint32(rh[8:])
		if incl > 1<<24 {
			return info, fmt.Errorf("record %d: captured length %d is not plausible", info.packets+1, incl)
		}
		info.packets++
		info.wireBytes += uint64(order.Uint32(rh[12:]))
		if fn == nil {
			if _, err := br.Discard(int(incl)); err != nil {
				return info, fmt.Errorf("read record %d: %w", info.packets, err)
			}
			continue
		}
		data = data[:incl]
		if _, err := io.ReadFull(br, data); err != nil {
			return info, fmt.Errorf("read record %d: %w", info.packets, err)
		}
		if err := fn(rh[:], data, order); err != nil {
			return info, err
		}
	}
}

// scanPcap counts the packets and wire bytes of a classic pcap file.
func scanPcap(path string) (pcapInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return pcapInfo{}, fmt.Errorf("scan trace: %w", err)
	}
	defer f.Close()
	info, err := walkPcap(f, nil)
	if err != nil {
		return info, fmt.Errorf("scan trace %s: %w", path, err)
	}
	return info, nil
}

// shiftPcap copies the classic pcap file src to dst with every timestamp
// moved by the whole seconds of by. Replaying the copy after the original
// through one flow table continues its clock, so the table stays warm and
// in steady state.
func shiftPcap(src, dst string, by time.Duration) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("shift trace: %w", err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("shift trace: %w", err)
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	secs := uint32(by / time.Second)
	_, err = walkPcap(in, func(hdr, data []byte, order binary.ByteOrder) error {
		if len(hdr) == 16 { // a record, not the file header
			order.PutUint32(hdr, order.Uint32(hdr)+secs)
		}
		if _, err := bw.Write(hdr); err != nil {
			return err
		}
		_, err := bw.Write(data)
		return err
	})
	if err == nil {
		err = bw.Flush()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return fmt.Errorf("shift trace %s to %s: %w", src, dst, err)
	}
	return nil
}

// warm reads the file once so every tool then reads it from the page cache.
func warm(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("warm page cache: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(io.Discard, f); err != nil {
		return fmt.Errorf("warm page cache with %s: %w", path, err)
	}
	return nil
}
