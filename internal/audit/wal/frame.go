package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// A segment starts with an 8-byte header (magic and format version), then
// holds frames, each 8-byte aligned:
//
//	crc    uint32  CRC-32C of the next three fields
//	length uint32  payload length; the top bit marks the last frame of a batch
//	index  uint64  the frame's number in the log, 1, 2, 3…
//	payload, then zero padding to a multiple of 8
//
// The rest of a segment is zeros (it is preallocated): a zero frame header
// is the end of the data. Little endian throughout.
const (
	magic       = "ostwal\x00\x01"
	headerSize  = len(magic)
	frameHeader = 16
	batchEnd    = 1 << 31
	maxPayload  = batchEnd - 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameSize is the bytes a frame holding n payload bytes takes.
func frameSize(n int) int { return frameHeader + (n+7)&^7 }

// appendFrame appends to b the frame numbered index holding p; last marks the
// end of a batch.
func appendFrame(b []byte, index uint64, p []byte, last bool) []byte {
	start := len(b)
	n := uint32(len(p))
	if last {
		n |= batchEnd
	}
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, n)
	b = binary.LittleEndian.AppendUint64(b, index)
	b = append(b, p...)
	binary.LittleEndian.PutUint32(b[start:], crc32.Checksum(b[start+4:], castagnoli))
	var pad [7]byte
	return append(b, pad[:frameSize(len(p))-(len(b)-start)]...)
}

type frame struct {
	index   uint64
	payload []byte // aliases the segment's bytes
	last    bool   // the last frame of its batch
	size    int    // bytes taken, padding included
}

// decodeFrame decodes the frame at the start of b, the rest of a segment. It
// returns why the bytes are not an intact frame, or "" if they are.
func decodeFrame(b []byte) (frame, string) {
	if len(b) < frameHeader {
		return frame{}, "frame header cut short by the end of the segment"
	}
	lf := binary.LittleEndian.Uint32(b[4:])
	n := int(lf &^ batchEnd)
	if n > len(b)-frameHeader || frameSize(n) > len(b) {
		return frame{}, fmt.Sprintf("frame length %d runs past the end of the segment", n)
	}
	if crc32.Checksum(b[4:frameHeader+n], castagnoli) != binary.LittleEndian.Uint32(b) {
		return frame{}, "checksum mismatch"
	}
	size := frameSize(n)
	if !isZero(b[frameHeader+n : size]) {
		return frame{}, "nonzero padding"
	}
	return frame{index: binary.LittleEndian.Uint64(b[8:]), payload: b[frameHeader : frameHeader+n], last: lf&batchEnd != 0, size: size}, ""
}

// atEnd reports whether b, the rest of a segment, starts at the end of the
// data: the segment's end or a zero frame header.
func atEnd(b []byte) bool { return isZero(b[:min(len(b), frameHeader)]) }

var zeros [4096]byte

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// dataEnd returns the offset just past the last nonzero byte of b (0 if b is
// all zero).
func dataEnd(b []byte) int {
	for len(b) > 0 {
		n := len(b) % len(zeros)
		if n == 0 {
			n = len(zeros)
		}
		tail := b[len(b)-n:]
		if !bytes.Equal(tail, zeros[:n]) {
			for i := n - 1; ; i-- {
				if tail[i] != 0 {
					return len(b) - n + i + 1
				}
			}
		}
		b = b[:len(b)-n]
	}
	return 0
}
