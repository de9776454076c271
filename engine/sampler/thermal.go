package sampler

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cpuSensor tells whether a thermal zone type or hwmon chip name is the
// CPU's (package or die) rather than a board, battery or Wi-Fi sensor.
func cpuSensor(name string) bool {
	name = strings.ToLower(name)
	for _, p := range []string{"x86_pkg_temp", "cpu", "coretemp", "k10temp", "zenpower", "soc", "package"} {
		if strings.Contains(name, p) {
			return true
		}
	}
	return false
}

// temperature is the CPU temperature in °C, or nil when the box exposes no
// sensor. Thermal zones (class/thermal/thermal_zone*/temp) are read first
// and hwmon chips (class/hwmon/hwmon*/temp*_input) only when there is no
// zone. Among the readings, the hottest CPU sensor wins; without a CPU
// sensor, the hottest of all. Readings outside -50..200 °C (unset sensors
// report -273 or absurd values) are ignored.
func temperature(sysRoot string) *float64 {
	type reading struct {
		cpu bool
		c   float64
	}
	var rs []reading
	add := func(name, file string) {
		b, err := os.ReadFile(file)
		if err != nil {
			return
		}
		milli, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return
		}
		c := float64(milli) / 1000
		if c < -50 || c > 200 {
			return
		}
		rs = append(rs, reading{cpuSensor(name), c})
	}
	zones, _ := filepath.Glob(filepath.Join(sysRoot, "class", "thermal", "thermal_zone*"))
	for _, z := range zones {
		add(readTrim(filepath.Join(z, "type")), filepath.Join(z, "temp"))
	}
	if len(rs) == 0 {
		chips, _ := filepath.Glob(filepath.Join(sysRoot, "class", "hwmon", "hwmon*"))
		for _, chip := range chips {
			name := readTrim(filepath.Join(chip, "name"))
			inputs, _ := filepath.Glob(filepath.Join(chip, "temp*_input"))
			for _, in := range inputs {
				add(name, in)
			}
		}
	}
	if len(rs) == 0 {
		return nil
	}
	anyCPU := false
	for _, r := range rs {
		anyCPU = anyCPU || r.cpu
	}
	var best *float64
	for _, r := range rs {
		if anyCPU && !r.cpu {
			continue
		}
		if best == nil || r.c > *best {
			c := r.c
			best = &c
		}
	}
	return best
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
