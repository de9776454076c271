package flowtable

// item is one scheduled check of a flow: at due, look at slot again.
type item struct {
	due  int64
	slot uint32
	gen  uint32
}

// fifo is a growable ring of items, in (roughly) increasing due order since
// every queue has a single timeout. Items whose flow has gone (gen changed)
// or moved to another queue are skipped when popped.
type fifo struct {
	buf  []item
	head int
	n    int
}

func (f *fifo) len() int { return f.n }

func (f *fifo) push(it item) {
	if f.n == len(f.buf) {
		nb := make([]item, max(2*len(f.buf), 1024))
		for i := 0; i < f.n; i++ {
			nb[i] = f.buf[(f.head+i)%len(f.buf)]
		}
		f.buf, f.head = nb, 0
	}
	f.buf[(f.head+f.n)%len(f.buf)] = it
	f.n++
}

func (f *fifo) peek() (item, bool) {
	if f.n == 0 {
		return item{}, false
	}
	return f.buf[f.head], true
}

func (f *fifo) pop() item {
	it := f.buf[f.head]
	f.head++
	if f.head == len(f.buf) {
		f.head = 0
	}
	f.n--
	return it
}

func (f *fifo) reset() { f.head, f.n = 0, 0 }
