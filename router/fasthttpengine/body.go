package fasthttpengine

import (
	"bytes"
	"errors"
	"io"
	"sync"

	"github.com/valyala/fasthttp"
)

// respBody streams an upstream's response body to the client: the body
// stream fasthttp writes after the handler returned, flushing each chunk
// of a chunked body. Closing it gives the connection back (when the body
// was read to its end) and ends the exchange. It is part of its request.
type respBody struct {
	rq     *request
	c      *upConn
	mode   uint8
	left   int64 // fixed: bytes left; chunked: bytes left in the chunk
	crlf   bool  // the CRLF ending a chunk is still to be read
	keep   bool
	done   bool
	closed bool
}

const (
	bodyFixed uint8 = iota
	bodyChunked
	bodyUntilClose
)

// Bounds of what the chunked decoder accepts.
const (
	maxTrailerLines = 64
)

var (
	errBadChunk   = errors.New("malformed chunked encoding from the upstream")
	errBadTrailer = errors.New("malformed trailer from the upstream")
)

func (b *respBody) start(rq *request, c *upConn, contentLength int, keep bool) {
	*b = respBody{rq: rq, c: c, keep: keep}
	switch {
	case contentLength >= 0:
		b.mode, b.left = bodyFixed, int64(contentLength)
	case contentLength == -1:
		b.mode = bodyChunked
	default:
		b.mode, b.keep = bodyUntilClose, false
	}
}

func (b *respBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	br := b.c.br
	switch b.mode {
	case bodyFixed:
		if b.left == 0 {
			b.done = true
			return 0, io.EOF
		}
		n, err := br.Read(p[:min(int64(len(p)), b.left)])
		b.left -= int64(n)
		if err == io.EOF && b.left > 0 {
			err = io.ErrUnexpectedEOF
		}
		if b.left == 0 {
			b.done = true
		}
		return n, err
	case bodyChunked:
		if b.left == 0 {
			if b.crlf {
				if err := readCRLF(br); err != nil {
					return 0, err
				}
				b.crlf = false
			}
			size, err := readChunkSize(br)
			if err != nil {
				return 0, err
			}
			if size == 0 {
				if err := b.readTrailer(); err != nil {
					return 0, err
				}
				b.done = true
				return 0, io.EOF
			}
			b.left = size
		}
		n, err := br.Read(p[:min(int64(len(p)), b.left)])
		b.left -= int64(n)
		if b.left == 0 {
			b.crlf = true
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	default:
		n, err := br.Read(p)
		if err == io.EOF {
			b.done = true
		}
		return n, err
	}
}

// Close gives the connection back when the body was read to its end and
// the upstream keeps it alive, else closes it, and ends the exchange.
func (b *respBody) Close() error {
	if b.closed || b.rq == nil {
		return nil
	}
	b.closed = true
	rq, c := b.rq, b.c
	if b.done && b.keep {
		rq.e.pools.put(c, rq.e.clock.Load())
	} else {
		c.Close()
	}
	rq.e.end(rq)
	return nil
}

// readCRLF reads the CRLF that ends a chunk's data.
func readCRLF(br interface{ ReadByte() (byte, error) }) error {
	c1, err := br.ReadByte()
	if err != nil {
		return err
	}
	c2, err := br.ReadByte()
	if err != nil {
		return err
	}
	if c1 != '\r' || c2 != '\n' {
		return errBadChunk
	}
	return nil
}

// readChunkSize reads a chunk's size line (extensions ignored).
func readChunkSize(br interface{ ReadSlice(byte) ([]byte, error) }) (int64, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return 0, errBadChunk
	}
	var n int64
	for _, c := range line {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | int64(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | int64(c-'a'+10)
		case 'A' <= c && c <= 'F':
			n = n<<4 | int64(c-'A'+10)
		default:
			return 0, errBadChunk
		}
	}
	return n, nil
}

// readTrailer reads the trailer section after the last chunk and sets
// the fields the upstream announced (Trailer) on the client's response,
// which fasthttp writes after the last chunk.
func (b *respBody) readTrailer() error {
	br := b.c.br
	var h *fasthttp.ResponseHeader
	if b.rq != nil {
		h = &b.rq.ctx.Response.Header
	}
	for range maxTrailerLines {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return errBadTrailer
		}
		line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
		if len(line) == 0 {
			return nil
		}
		k, v, ok := bytes.Cut(line, []byte{':'})
		if !ok || len(k) == 0 {
			return errBadTrailer
		}
		if h != nil { // nil: an HTTP/1.0 client, which cannot get trailers
			h.SetBytesKV(k, bytes.TrimSpace(v))
		}
	}
	return errBadTrailer
}

// copyBufs recycles the buffers streamed request bodies are copied with.
var copyBufs = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func getCopyBuf() []byte  { return copyBufs.Get().(*[32 << 10]byte)[:] }
func putCopyBuf(b []byte) { copyBufs.Put((*[32 << 10]byte)(b)) }
