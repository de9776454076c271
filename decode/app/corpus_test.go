package app

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/netsentry/netsentry/internal/testcorpus"
)

// The corpus tests replay the shared captures and compare what State found
// with independent oracles:
//
//   - testdata/golden/F.tsv: tshark 4.0 fields per frame (TLS SNI, ALPN,
//     JA3, versions; DNS names, types, rcodes, counts; HTTP method, host,
//     URI, user agent, status; SSH banners; QUIC versions), written by
//     testdata/gen_golden.sh (run it, or go test -run TestCorpus -update);
//   - testdata/golden/F.ja4.tsv: JA4 from FoxIO's reference implementation;
//   - oracle/F.ndpi_expected_flows.tsv in the corpus: nDPI's own expected
//     protocol per flow, for its captures.

var (
	corpusDir = flag.String("corpus", envOr("NETSENTRY_PCAPS", testcorpus.PcapsDir()), "directory of the shared pcap corpus")
	update    = flag.Bool("update", false, "regenerate testdata/golden with testdata/gen_golden.sh (needs tshark)")
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// corpusFiles returns the captures of the corpus, or skips the test.
func corpusFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{"*.pcap", "*.pcapng"} {
		m, _ := filepath.Glob(filepath.Join(*corpusDir, pat))
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatalf("no captures in %s (the shared corpus is missing; set -corpus or NETSENTRY_PCAPS)", *corpusDir)
	}
	sort.Strings(files)
	return files
}

// goldenRow is one frame of a golden table, by column name.
type goldenRow map[string]string

// list returns the comma-separated values of a column.
func (r goldenRow) list(col string) []string {
	if r[col] == "" {
		return nil
	}
	return strings.Split(r[col], ",")
}

func (r goldenRow) last(col string) string {
	l := r.list(col)
	if len(l) == 0 {
		return ""
	}
	return l[len(l)-1]
}

// pair returns the frame's innermost transport endpoints.
func (r goldenRow) pair() (pairKey, bool) {
	src, dst := r.last("ipv6.src"), r.last("ipv6.dst")
	if src == "" {
		src, dst = r.last("ip.src"), r.last("ip.dst")
	}
	l4, sp, dp := uint8(6), r.last("tcp.srcport"), r.last("tcp.dstport")
	if sp == "" {
		l4, sp, dp = 17, r.last("udp.srcport"), r.last("udp.dstport")
	}
	a, err1 := netip.ParseAddr(src)
	b, err2 := netip.ParseAddr(dst)
	p, err3 := strconv.Atoi(sp)
	q, err4 := strconv.Atoi(dp)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return pairKey{}, false
	}
	return makePair(l4, endpoint{a, uint16(p)}, endpoint{b, uint16(q)}), true
}

func readTSV(path string) ([]goldenRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var head []string
	var rows []goldenRow
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if head == nil {
			head = cols
			continue
		}
		r := goldenRow{}
		for i, c := range cols {
			if i < len(head) {
				r[head[i]] = c
			}
		}
		rows = append(rows, r)
	}
	return rows, sc.Err()
}

// flowApp is a flow's findings as a consumer sees them: the protocol name
// and the parsed app JSON.
type flowApp struct {
	fl   *replayFlow
	name string
	obj  map[string]any
	strs map[string]bool
}

func appOf(t testing.TB, fl *replayFlow) flowApp {
	t.Helper()
	js := fl.st.AppendJSON(nil)
	var obj map[string]any
	if err := json.Unmarshal(js, &obj); err != nil {
		t.Fatalf("flow %v: invalid JSON %q: %v", fl.key, js, err)
	}
	a := flowApp{fl: fl, name: fl.st.Name(), obj: obj, strs: map[string]bool{}}
	appStrings(obj, a.strs)
	return a
}

// field returns obj[proto][k] of the first listed protocol object having it.
func (a flowApp) field(k string, protos ...string) any {
	for _, p := range protos {
		if o, ok := a.obj[p].(map[string]any); ok {
			if v, ok := o[k]; ok {
				return v
			}
		}
	}
	return nil
}

func normName(s string) string { return strings.TrimSuffix(strings.ToLower(s), ".") }

func TestCorpus(t *testing.T) {
	if *update {
		cmd := exec.Command("testdata/gen_golden.sh", *corpusDir)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("gen_golden.sh: %v", err)
		}
	}
	pool := NewPool(64)
	for _, path := range corpusFiles(t) {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			rp, err := replayFile(path, pool)
			if err != nil {
				t.Fatalf("replay: %v", err)
			}
			apps := map[pairKey][]flowApp{}
			for _, fl := range rp.flows {
				apps[fl.key.pair] = append(apps[fl.key.pair], appOf(t, fl))
			}
			rows, err := readTSV(filepath.Join("testdata", "golden", name+".tsv"))
			if err != nil {
				t.Fatalf("golden: %v (run testdata/gen_golden.sh)", err)
			}
			checkNames(t, rows, apps)
			checkTLS(t, rows, apps)
			checkDNS(t, rows, apps)
			checkHTTP(t, rows, apps)
			checkSSHQUIC(t, rows, apps)
			checkJA4(t, filepath.Join("testdata", "golden", name+".ja4.tsv"), apps)
			checkNDPI(t, filepath.Join(*corpusDir, "oracle", name+".ndpi_expected_flows.tsv"), apps)
			if pool.Free() != 64 {
				t.Errorf("pool has %d free slots after Release of every flow, want 64", pool.Free())
			}
		})
	}
}

// checkNames: every TLS SNI, DNS question name, HTTP host and gQUIC SNI that
// tshark extracts is among the app strings of a flow with the frame's
// endpoints (compare_app.py asks only for it to be in some flow).
func checkNames(t *testing.T, rows []goldenRow, apps map[pairKey][]flowApp) {
	t.Helper()
	found, total := 0, 0
	for _, r := range rows {
		var names []string
		for _, col := range []string{"tls.handshake.extensions_server_name", "dns.qry.name", "http.host", "gquic.tag.sni"} {
			names = append(names, r.list(col)...)
		}
		if len(names) == 0 {
			continue
		}
		k, ok := r.pair()
		if !ok {
			t.Errorf("frame %s: no endpoints in golden row", r["frame.number"])
			continue
		}
		for _, n := range names {
			total++
			hit := false
			for _, a := range apps[k] {
				hit = hit || a.strs[normName(n)]
			}
			if hit {
				found++
			} else {
				t.Errorf("frame %s %v: name %q that tshark shows is in no flow's app object", r["frame.number"], k, n)
			}
		}
	}
	t.Logf("names %d/%d", found, total)
}

// checkTLS: the first ClientHello of each flow gives tshark's JA3, its first
// ALPN value, handshake and record versions; the first ServerHello gives the
// negotiated version.
func checkTLS(t *testing.T, rows []goldenRow, apps map[pairKey][]flowApp) {
	t.Helper()
	seenCH, seenSH := map[pairKey]bool{}, map[pairKey]bool{}
	ja3 := 0
	defer func() {
		if ja3 > 0 {
			t.Logf("ja3 compared on %d flows", ja3)
		}
	}()
	for _, r := range rows {
		k, ok := r.pair()
		if !ok || len(apps[k]) == 0 {
			continue
		}
		a := apps[k][0]
		types := r.list("tls.handshake.type")
		if len(types) > 0 && types[0] == "1" && !seenCH[k] {
			seenCH[k] = true
			want := r.list("tls.handshake.ja3")
			if len(want) > 0 {
				ja3++
				if got := a.field("ja3", "tls", "quic"); got != want[0] {
					t.Errorf("frame %s %v: ja3 %v, tshark %s (%s)", r["frame.number"], k, got, want[0], r["tls.handshake.ja3_full"])
				}
			}
			if alpn := r.list("tls.handshake.extensions_alpn_str"); len(alpn) > 0 {
				if got := a.field("alpn", "tls", "quic"); got != alpn[0] {
					t.Errorf("frame %s %v: alpn %v, tshark %s", r["frame.number"], k, got, alpn[0])
				}
			}
			if k.l4 == 6 {
				checkVersion(t, r, a, "client_version", r.list("tls.handshake.version"))
				checkVersion(t, r, a, "record_version", r.list("tls.record.version"))
			}
		}
		if len(types) > 0 && types[0] == "2" && !seenSH[k] && k.l4 == 6 {
			seenSH[k] = true
			v := r.list("tls.handshake.extensions.supported_version")
			if len(v) == 0 {
				v = r.list("tls.handshake.version")
			}
			checkVersion(t, r, a, "version", v)
		}
	}
}

func checkVersion(t *testing.T, r goldenRow, a flowApp, key string, want []string) {
	t.Helper()
	if len(want) == 0 {
		return
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(want[0], "0x"), 16, 16)
	if err != nil {
		t.Errorf("frame %s: bad version %q", r["frame.number"], want[0])
		return
	}
	if got, exp := a.field(key, "tls"), tlsVersionName(uint16(v)); got != exp {
		t.Errorf("frame %s: tls %s %v, tshark %s (%s)", r["frame.number"], key, got, want[0], exp)
	}
}

// checkDNS: per flow, the number of queries, the type of the first question,
// and the rcode and answer count of the last response agree with tshark.
func checkDNS(t *testing.T, rows []goldenRow, apps map[pairKey][]flowApp) {
	t.Helper()
	type agg struct {
		queries        int
		qtype          string
		rcode, answers string
		responses      int
	}
	per := map[pairKey]*agg{}
	var order []pairKey
	for _, r := range rows {
		resp := r.list("dns.flags.response")
		if len(resp) == 0 {
			continue
		}
		k, ok := r.pair()
		if !ok {
			continue
		}
		g := per[k]
		if g == nil {
			g = &agg{}
			per[k] = g
			order = append(order, k)
		}
		if g.qtype == "" && len(r.list("dns.qry.type")) > 0 {
			g.qtype = r.list("dns.qry.type")[0]
		}
		rcodes, answers := r.list("dns.flags.rcode"), r.list("dns.count.answers")
		for i, v := range resp {
			if v == "0" {
				g.queries++
				continue
			}
			g.responses++
			if i < len(rcodes) {
				g.rcode = rcodes[i]
			}
			if i < len(answers) {
				g.answers = answers[i]
			}
		}
	}
	for _, k := range order {
		g := per[k]
		if len(apps[k]) == 0 {
			t.Errorf("%v: DNS flow missing", k)
			continue
		}
		a := apps[k][0]
		if got := a.field("queries", "dns"); got != float64(g.queries) {
			t.Errorf("%v: dns queries %v, tshark %d", k, got, g.queries)
		}
		if g.qtype != "" {
			n, _ := strconv.Atoi(g.qtype)
			want := qtypeName(uint16(n))
			if want == "" {
				want = "TYPE" + g.qtype
			}
			if got := a.field("qtype", "dns"); got != want {
				t.Errorf("%v: dns qtype %v, tshark %s", k, got, want)
			}
		}
		if g.responses > 0 {
			n, _ := strconv.Atoi(g.rcode)
			if got := a.field("rcode", "dns"); got != rcodeName(uint8(n)) {
				t.Errorf("%v: dns rcode %v, tshark %s", k, got, g.rcode)
			}
			if got := a.field("answers", "dns"); g.answers != "" && fmt.Sprint(got) != g.answers {
				t.Errorf("%v: dns answers %v, tshark %s", k, got, g.answers)
			}
		}
	}
}

// checkHTTP: the first request's method, URI and user agent and the first
// status code of each flow agree with tshark (truncated to our bounds).
func checkHTTP(t *testing.T, rows []goldenRow, apps map[pairKey][]flowApp) {
	t.Helper()
	seenReq, seenResp := map[pairKey]bool{}, map[pairKey]bool{}
	for _, r := range rows {
		k, ok := r.pair()
		if !ok || len(apps[k]) == 0 {
			continue
		}
		a := apps[k][0]
		obj := []string{"http", "ssdp"}
		if m := r.list("http.request.method"); len(m) > 0 && !seenReq[k] {
			seenReq[k] = true
			if got := a.field("method", obj...); got != m[0] {
				t.Errorf("frame %s %v: method %v, tshark %s", r["frame.number"], k, got, m[0])
			}
			if uri := r["http.request.uri"]; uri != "" {
				got, _ := a.field("path", obj...).(string)
				if got == "" || !strings.HasPrefix(uri, got) || (len(got) < int(fieldCap[fPath]) && got != uri) {
					t.Errorf("frame %s %v: path %q, tshark %q", r["frame.number"], k, got, uri)
				}
			}
			if ua := r["http.user_agent"]; ua != "" {
				got, _ := a.field("user_agent", obj...).(string)
				if got == "" || !strings.HasPrefix(ua, got) || (len(got) < int(fieldCap[fUA]) && got != ua) {
					t.Errorf("frame %s %v: user agent %q, tshark %q", r["frame.number"], k, got, ua)
				}
			}
		}
		if c := r.list("http.response.code"); len(c) > 0 && !seenResp[k] {
			seenResp[k] = true
			got := a.field("status", obj...)
			if got == nil && beyondBudget(a.fl, r) {
				// Bounded work: tshark completes this response after the
				// packets detection reads (its first status line was not
				// captured, the next one comes later).
				continue
			}
			if fmt.Sprint(got) != c[0] {
				t.Errorf("frame %s %v: status %v, tshark %s", r["frame.number"], k, got, c[0])
			}
		}
	}
}

// beyondBudget reports whether the golden row's frame comes after the first
// MaxPackets payload packets of its direction of the flow.
func beyondBudget(fl *replayFlow, r goldenRow) bool {
	n, err := strconv.Atoi(r["frame.number"])
	if err != nil {
		return false
	}
	for _, frames := range fl.frames {
		for i, f := range frames {
			if f == n {
				return i >= MaxPackets
			}
		}
	}
	return false
}

// checkSSHQUIC: SSH banners and QUIC versions agree with tshark.
func checkSSHQUIC(t *testing.T, rows []goldenRow, apps map[pairKey][]flowApp) {
	t.Helper()
	for _, r := range rows {
		k, ok := r.pair()
		if !ok || len(apps[k]) == 0 {
			continue
		}
		a := apps[k][0]
		if b := r["ssh.protocol"]; b != "" {
			if a.field("client", "ssh") != b && a.field("server", "ssh") != b {
				t.Errorf("frame %s %v: ssh banner %q not in %v", r["frame.number"], k, b, a.obj)
			}
		}
		if v := r.list("quic.version"); len(v) > 0 {
			n, _ := strconv.ParseUint(strings.TrimPrefix(v[0], "0x"), 16, 32)
			want := string(appendQUICVersion(nil, uint32(n)))
			if got := a.field("version", "quic"); got != want {
				t.Errorf("frame %s %v: quic version %v, tshark %s", r["frame.number"], k, got, want)
			}
		}
		if v := r["gquic.version"]; v != "" {
			if got := a.field("version", "quic"); got != v {
				t.Errorf("frame %s %v: gquic version %v, tshark %s", r["frame.number"], k, got, v)
			}
		}
	}
}

// checkJA4: each stream's first ClientHello has the JA4 of FoxIO's reference
// implementation.
func checkJA4(t *testing.T, path string, apps map[pairKey][]flowApp) {
	t.Helper()
	rows, err := readTSV(path)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ja4 compared on %d flows", len(rows))
	for _, r := range rows {
		src, err1 := netip.ParseAddr(r["src"])
		dst, err2 := netip.ParseAddr(r["dst"])
		sp, _ := strconv.Atoi(r["srcport"])
		dp, _ := strconv.Atoi(r["dstport"])
		if err1 != nil || err2 != nil {
			t.Errorf("bad JA4 row %v", r)
			continue
		}
		l4 := uint8(6)
		if strings.HasPrefix(r["ja4"], "q") {
			l4 = 17
		}
		k := makePair(l4, endpoint{src, uint16(sp)}, endpoint{dst, uint16(dp)})
		if len(apps[k]) == 0 {
			t.Errorf("%v: no flow for JA4 row", k)
			continue
		}
		if got := apps[k][0].field("ja4", "tls", "quic"); got != r["ja4"] {
			t.Errorf("%v: ja4 %v, FoxIO %s", k, got, r["ja4"])
		}
	}
}

// ndpiAccepts lists, per nDPI master protocol, the names of ours that
// compare_app.py accepts as agreeing.
var ndpiAccepts = map[string][]string{
	"HTTP":  {"HTTP"},
	"TLS":   {"TLS", "HTTPS"},
	"DNS":   {"DNS"},
	"SMTP":  {"SMTP", "SMTPS"},
	"SMTPS": {"SMTP", "SMTPS", "TLS"},
	"SSH":   {"SSH"},
	"QUIC":  {"QUIC"},
}

// checkNDPI: for the flows nDPI labels HTTP, TLS, DNS, SMTP(S), SSH or QUIC,
// our protocol agrees. There is no allow-list: every such flow of the
// corpus agrees, including nDPI's port-based verdicts on the SYN-only flows
// of ndpi-synscan (ours are port guesses too, flagged as such).
func checkNDPI(t *testing.T, path string, apps map[pairKey][]flowApp) {
	t.Helper()
	rows, err := readTSV(path)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	agree, total := 0, 0
	for _, r := range rows {
		master := strings.ToUpper(strings.SplitN(r["proto"], ".", 2)[0])
		ok := ndpiAccepts[master]
		if ok == nil {
			continue
		}
		total++
		a, err1 := netip.ParseAddr(r["addr_a"])
		b, err2 := netip.ParseAddr(r["addr_b"])
		pa, _ := strconv.Atoi(r["port_a"])
		pb, _ := strconv.Atoi(r["port_b"])
		if err1 != nil || err2 != nil {
			t.Errorf("bad nDPI row %v", r)
			continue
		}
		l4 := uint8(6)
		if r["l4"] == "UDP" {
			l4 = 17
		}
		k := makePair(l4, endpoint{a, uint16(pa)}, endpoint{b, uint16(pb)})
		var ours []string
		hit := false
		for _, f := range apps[k] {
			ours = append(ours, f.name)
			for _, n := range ok {
				hit = hit || f.name == n
			}
		}
		if hit {
			agree++
		} else {
			t.Errorf("%v: nDPI %s, ours %v", k, r["proto"], ours)
		}
	}
	t.Logf("nDPI agree %d/%d", agree, total)
}

func (e endpoint) String() string { return netip.AddrPortFrom(e.addr, e.port).String() }
func (k pairKey) String() string {
	p := "tcp"
	if k.l4 == 17 {
		p = "udp"
	}
	return p + " " + k.a.String() + "-" + k.b.String()
}
