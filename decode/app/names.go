package app

// A flow may show many names of one kind: DNS question names (a resolver's
// upstream flow, a DNS tunnel, an mDNS query asking for a dozen services)
// or HTTP hosts (requests through a proxy). The first is kept as its field
// (fQuery, fHost); the others follow the other strings of the arena as
// entries
//
//	[prefix length][shared length][prefix bytes]
//
// where a name is its prefix followed by the last "shared" bytes of the name
// before it (the first entry follows the field's name). Names of one flow
// share long suffixes (".local", "._tcp.local", a tunnel's domain), so the
// arena holds about twice as many as it would as plain strings.

// addName keeps name as field f when f is unset, else as a further name
// when it differs (ignoring case) from those kept and there is room. It
// reports whether name became f.
func (s *State) addName(f field, name []byte) bool {
	if s.slen[f] == 0 {
		s.set(f, name)
		return true
	}
	name = name[:min(len(name), int(fieldCap[f]))]
	if equalFold(s.get(f), name) {
		// The first name again (a response to its query, a query repeated):
		// the walk below would find it first, after copying it.
		return false
	}
	it := s.namesFrom(f)
	for kept, ok := it.cur[:it.n], true; ok; kept, ok = it.next(s) {
		if equalFold(kept, name) {
			return false
		}
	}
	shared := 0 // with the last name kept, now in it.cur
	for shared < len(name) && shared < it.n && name[len(name)-1-shared] == it.cur[it.n-1-shared] {
		shared++
	}
	p := len(name) - shared
	if s.names == 255 || int(s.used)+2+p > arenaSize {
		return false
	}
	if s.names == 0 {
		s.nameOff = s.used
	}
	s.arena[s.used], s.arena[s.used+1] = byte(p), byte(shared)
	copy(s.arena[s.used+2:], name[:p])
	s.used += uint16(2 + p)
	s.names++
	return false
}

// nameIter walks the names kept by addName; cur holds the current one.
type nameIter struct {
	off, left int
	n         int
	cur       [256]byte
}

// namesFrom starts a walk at the first name, field f.
func (s *State) namesFrom(f field) nameIter {
	it := nameIter{off: int(s.nameOff), left: int(s.names)}
	it.n = copy(it.cur[:], s.get(f))
	return it
}

// next moves to the next further name; false at the end.
func (it *nameIter) next(s *State) ([]byte, bool) {
	if it.left == 0 {
		return nil, false
	}
	p, shared := int(s.arena[it.off]), int(s.arena[it.off+1])
	var name [256]byte
	k := copy(name[:], s.arena[it.off+2:it.off+2+p])
	k += copy(name[k:], it.cur[it.n-shared:it.n])
	it.n = copy(it.cur[:], name[:k])
	it.off += 2 + p
	it.left--
	return it.cur[:it.n], true
}

// NamesFull reports that the State holds DNS question names or HTTP hosts
// and may have no room for the next one (a DNS name can take 253 bytes).
// A flow table that must report every name a flow shows (a DNS tunnel, a
// resolver's upstream flow, mDNS) records the flow as it stands when
// NamesFull turns true, as it would at an active timeout, and calls
// ClearNames before the next Feed. Names that one packet brings beyond the
// room left are dropped.
func (s *State) NamesFull() bool {
	return (s.names > 0 || s.slen[s.nameField()] != 0) && arenaSize-int(s.used) < 2+253
}

// nameField is the field that holds the first of the names addName keeps.
func (s *State) nameField() field {
	if s.Proto.isDNSFamily() {
		return fQuery
	}
	return fHost
}

// ClearNames forgets the names kept since the last ClearNames: the further
// names, and the first one too when nothing was stored after it (a DNS
// flow's query), so that their room serves the names to come.
func (s *State) ClearNames() {
	end := int(s.nameOff)
	for range int(s.names) {
		end += 2 + int(s.arena[end])
	}
	if s.names > 0 && end == int(s.used) { // nothing was stored after them
		s.used = s.nameOff
	}
	s.names = 0
	if f := s.nameField(); s.slen[f] != 0 && int(s.soff[f])+int(s.slen[f]) == int(s.used) {
		s.used = s.soff[f]
		s.slen[f] = 0
	}
}

// namesJSON writes the further names as an array member.
func (s *State) namesJSON(w *jsonWriter, k string) {
	if s.names == 0 {
		return
	}
	w.key(k)
	w.b = append(w.b, '[')
	it := s.namesFrom(s.nameField())
	for i := 0; ; i++ {
		name, ok := it.next(s)
		if !ok {
			break
		}
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = appendJSONString(w.b, name)
	}
	w.b = append(w.b, ']')
}
