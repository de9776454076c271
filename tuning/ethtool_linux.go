package tuning

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtool commands (linux/ethtool.h), sent through SIOCETHTOOL.
const (
	ethtoolGRingparam  = unix.ETHTOOL_GRINGPARAM
	ethtoolSRingparam  = 0x11
	ifreqSize          = 40
	ethtoolRingparamSz = 36
)

// ifreqData is struct ifreq with the ifr_data pointer; the pointer stays
// typed so the garbage collector keeps the payload where it is.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [ifreqSize - unix.IFNAMSIZ - 8]byte
}

type ethtoolRingparam struct {
	cmd                                             uint32
	rxMax, rxMiniMax, rxJumboMax, txMax             uint32
	rxPending, rxMiniPending, rxJumboPending, txPen uint32
}

// ethtool sends one SIOCETHTOOL request about ifname with data as its payload.
func ethtool(ifname string, data unsafe.Pointer) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open ethtool socket: %w", err)
	}
	defer unix.Close(fd)
	var ifr ifreqData
	copy(ifr.name[:unix.IFNAMSIZ-1], ifname)
	ifr.data = data
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		return e
	}
	return nil
}

// offloadGroups name the kernel features (ETH_SS_FEATURES strings) behind
// each offload as ethtool -k shows it; an offload is on when any is active.
var offloadGroups = []struct {
	name     string
	features []string
}{
	{"gro", []string{"rx-gro", "rx-gro-hw", "rx-gro-list"}},
	{"lro", []string{"rx-lro"}},
	{"tso", []string{"tx-tcp-segmentation", "tx-tcp-ecn-segmentation", "tx-tcp-mangleid-segmentation", "tx-tcp6-segmentation", "tx-tcp-accecn-segmentation"}},
	{"gso", []string{"tx-generic-segmentation"}},
}

const (
	ethtoolGSTRINGS  = 0x1b
	ethtoolGSSETINFO = 0x37
	ethtoolGFEATURES = 0x3a
	ethtoolSFEATURES = 0x3b
	ethSSFeatures    = 4
	ethGStringLen    = 32
)

// features reads the interface's feature names and active bits.
func features(ifname string) (names []string, active, changeable []uint32, err error) {
	info := make([]byte, 16+4)
	binary.NativeEndian.PutUint32(info[0:], ethtoolGSSETINFO)
	binary.NativeEndian.PutUint64(info[8:], 1<<ethSSFeatures)
	if err := ethtool(ifname, unsafe.Pointer(&info[0])); err != nil {
		return nil, nil, nil, fmt.Errorf("read feature count: %w", err)
	}
	n := int(binary.NativeEndian.Uint32(info[16:]))
	strs := make([]byte, 12+n*ethGStringLen)
	binary.NativeEndian.PutUint32(strs[0:], ethtoolGSTRINGS)
	binary.NativeEndian.PutUint32(strs[4:], ethSSFeatures)
	binary.NativeEndian.PutUint32(strs[8:], uint32(n))
	if err := ethtool(ifname, unsafe.Pointer(&strs[0])); err != nil {
		return nil, nil, nil, fmt.Errorf("read feature names: %w", err)
	}
	for i := 0; i < n; i++ {
		b := strs[12+i*ethGStringLen : 12+(i+1)*ethGStringLen]
		if j := bytes.IndexByte(b, 0); j >= 0 {
			b = b[:j]
		}
		names = append(names, string(b))
	}
	words := (n + 31) / 32
	gf := make([]byte, 8+words*16)
	binary.NativeEndian.PutUint32(gf[0:], ethtoolGFEATURES)
	binary.NativeEndian.PutUint32(gf[4:], uint32(words))
	if err := ethtool(ifname, unsafe.Pointer(&gf[0])); err != nil {
		return nil, nil, nil, fmt.Errorf("read features: %w", err)
	}
	for w := 0; w < words; w++ {
		blk := gf[8+w*16:]
		avail := binary.NativeEndian.Uint32(blk[0:])
		never := binary.NativeEndian.Uint32(blk[12:])
		active = append(active, binary.NativeEndian.Uint32(blk[8:]))
		changeable = append(changeable, avail&^never)
	}
	return names, active, changeable, nil
}

// switchOff asks for the features at indices idx to be off.
func switchOff(ifname string, nfeat int, idx []int) error {
	words := (nfeat + 31) / 32
	sf := make([]byte, 8+words*8)
	binary.NativeEndian.PutUint32(sf[0:], ethtoolSFEATURES)
	binary.NativeEndian.PutUint32(sf[4:], uint32(words))
	for _, i := range idx {
		off := 8 + (i/32)*8
		binary.NativeEndian.PutUint32(sf[off:], binary.NativeEndian.Uint32(sf[off:])|1<<(i%32)) // valid; requested stays 0
	}
	return ethtool(ifname, unsafe.Pointer(&sf[0]))
}

// offloads checks that the NIC hands every packet to the capture as it was
// on the wire: GRO and LRO merge received segments into one large frame,
// TSO and GSO let the host's own traffic appear as unsegmented giants.
func offloads(ifname string, apply bool) []Finding {
	names, active, changeable, err := features(ifname)
	if err != nil {
		return []Finding{{Check: "offload", Interface: ifname, Status: Info, Detail: fmt.Sprintf("features not readable: %v", err)}}
	}
	index := map[string]int{}
	for i, n := range names {
		index[n] = i
	}
	isOn := func(i int) bool { return active[i/32]&(1<<(i%32)) != 0 }
	var out []Finding
	for _, g := range offloadGroups {
		f := Finding{Check: "offload", Interface: ifname}
		var on, fixable []int
		for _, name := range g.features {
			if i, ok := index[name]; ok && isOn(i) {
				on = append(on, i)
				if changeable[i/32]&(1<<(i%32)) != 0 {
					fixable = append(fixable, i)
				}
			}
		}
		f.Detail = fmt.Sprintf("%s %s", g.name, onOff(len(on) > 0))
		if len(on) == 0 {
			out = append(out, f)
			continue
		}
		f.Status = Warn
		f.Fix = fmt.Sprintf("ethtool -K %s %s off", ifname, g.name)
		if len(fixable) < len(on) {
			f.Detail += " (partly fixed on by the driver)"
		}
		if apply && len(fixable) > 0 {
			if err := switchOff(ifname, len(names), fixable); err != nil {
				f.Detail += fmt.Sprintf(" (could not switch off: %v)", err)
			} else if _, act, _, err := features(ifname); err == nil {
				still := false
				for _, i := range on {
					still = still || act[i/32]&(1<<(i%32)) != 0
				}
				if !still {
					f.Status, f.Applied = OK, true
					f.Detail += " -> off"
				}
			}
		}
		out = append(out, f)
	}
	return out
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// rings checks that the NIC's receive ring is at its maximum, the cheapest
// buffer against bursts.
func rings(ifname string, apply bool) Finding {
	f := Finding{Check: "ring", Interface: ifname}
	rp := ethtoolRingparam{cmd: ethtoolGRingparam}
	if err := ethtool(ifname, unsafe.Pointer(&rp)); err != nil {
		f.Status, f.Detail = Info, fmt.Sprintf("ring sizes not readable (%v): virtual interface?", err)
		return f
	}
	f.Detail = fmt.Sprintf("rx ring %d of %d", rp.rxPending, rp.rxMax)
	if rp.rxMax == 0 || rp.rxPending >= rp.rxMax {
		return f
	}
	f.Status = Warn
	f.Fix = fmt.Sprintf("ethtool -G %s rx %d", ifname, rp.rxMax)
	if apply {
		want := rp
		want.cmd = ethtoolSRingparam
		want.rxPending = rp.rxMax
		if err := ethtool(ifname, unsafe.Pointer(&want)); err == nil {
			f.Status, f.Applied = OK, true
			f.Detail += fmt.Sprintf(" -> %d", rp.rxMax)
		} else {
			f.Detail += fmt.Sprintf(" (could not resize: %v)", err)
		}
	}
	return f
}

// memlock checks the locked-memory limit: eBPF maps on kernels before 5.11
// and locked capture buffers count against it.
func memlock() Finding {
	f := Finding{Check: "memlock"}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &rl); err != nil {
		f.Status, f.Detail = Info, fmt.Sprintf("not readable: %v", err)
		return f
	}
	if rl.Cur == math.MaxUint64 || rl.Cur == unix.RLIM_INFINITY {
		f.Detail = "memlock unlimited"
		return f
	}
	f.Detail = fmt.Sprintf("memlock %d KiB", rl.Cur>>10)
	if rl.Cur < 64<<20 {
		f.Status = Warn
		f.Fix = "ulimit -l unlimited  # systemd: LimitMEMLOCK=infinity in the unit"
	}
	return f
}

func allowedCPUs() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	var out []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out
}

var _ = [1]struct{}{}[unsafe.Sizeof(ethtoolRingparam{})-ethtoolRingparamSz]
