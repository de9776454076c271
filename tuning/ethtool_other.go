//go:build !linux

package tuning

import "runtime"

func offloads(ifname string, apply bool) []Finding {
	return []Finding{{Check: "offload", Interface: ifname, Status: Info, Detail: "ethtool checks need Linux"}}
}

func rings(ifname string, apply bool) Finding {
	return Finding{Check: "ring", Interface: ifname, Status: Info, Detail: "ethtool checks need Linux"}
}

func memlock() Finding {
	return Finding{Check: "memlock", Status: Info, Detail: "memlock check needs Linux"}
}

func allowedCPUs() []int {
	out := make([]int, runtime.NumCPU())
	for i := range out {
		out[i] = i
	}
	return out
}
