package configs

import (
	"fmt"
	"os"
	"strings"
)

// NotActedOn is the text every warning about an accepted but unbuilt
// setting carries, so that logs and tools can find them.
const NotActedOn = "accepted, not yet acted on"

// inertKeys are the keys (and key prefixes, ending in ".") of features this
// build does not have yet: they are decoded and validated, so a file written
// for a later build loads, but changing them changes nothing.
var inertKeys = []string{}

// Inert reports whether the dotted key (as changed keys are named, e.g.
// "storage.retention_days") belongs to a feature this build accepts but
// does not act on yet; a change to it needs no restart, since it does
// nothing.
func Inert(key string) bool {
	for _, k := range inertKeys {
		if key == k || strings.HasSuffix(k, ".") && (strings.HasPrefix(key, k) || key == k[:len(k)-1]) {
			return true
		}
	}
	return false
}

// Warnings lists the settings of c that are accepted but not acted on by
// this build (each message says NotActedOn and why), in key order. They
// are not errors: a configuration with warnings loads and runs. A warning
// has no File or Line; Check fills them in.
func (c *Config) Warnings() []Problem {
	var w validator
	for i, p := range c.NetworkAnalysis.Protocols {
		if p == "smb" {
			w.add(fmt.Sprintf("network_analysis.protocols[%d]", i), "%q is %s: there is no SMB detector yet, so SMB flows are named by their port guess only", p, NotActedOn)
		}
	}
	if st := &c.Storage; !st.Remote() {
		if st.RemoteURL != "" {
			w.add("storage.remote_url", "%q is %s: storage.type is local, which sends nothing; set storage.type to prometheus, victoriametrics or influxdb to use it", st.RemoteURL, NotActedOn)
		}
	} else if st.Type != "influxdb" {
		for _, k := range []struct{ key, val string }{{"influx_database", st.InfluxDatabase}, {"influx_org", st.InfluxOrg}, {"influx_bucket", st.InfluxBucket}} {
			if k.val != "" {
				w.add("storage."+k.key, "%q is %s: storage.type is %s, not influxdb", k.val, NotActedOn, st.Type)
			}
		}
	}
	return w.problems
}

// Check decodes data, a configuration file named name, laid over Default
// like Parse, calls adjust (if not nil) on the result, and validates it like
// Validate. It returns the configuration, its warnings (see Warnings) and an
// *Errors listing every problem of both kinds, each with name and, where the
// key is set in data, its line; on any problem the Config is zero.
func Check(data []byte, name string, adjust func(*Config)) (Config, []Problem, error) {
	c := Default()
	lines, err := decode(&c, data, name)
	var errs Errors
	if err != nil {
		errs.Problems = append(errs.Problems, err.(*Errors).Problems...)
	}
	decodeProblems := errs.Problems
	if adjust != nil {
		adjust(&c)
	}
	if err := c.Validate(); err != nil {
	next:
		for _, p := range err.(*Errors).Problems {
			// A key that did not decode has been reported already.
			for _, d := range decodeProblems {
				if d.Key != "" && (p.Key == d.Key || strings.HasPrefix(p.Key, d.Key+".") || strings.HasPrefix(p.Key, d.Key+"[")) {
					continue next
				}
			}
			p.File = name
			p.Line = lines[p.Key]
			errs.Problems = append(errs.Problems, p)
		}
	}
	warns := c.Warnings()
	for i := range warns {
		warns[i].File = name
		warns[i].Line = lines[warns[i].Key]
	}
	if len(errs.Problems) > 0 {
		return Config{}, warns, &errs
	}
	return c, warns, nil
}

// CheckFile reads the configuration file at path and checks it like Check.
// A file that cannot be read gives the os error, wrapped.
func CheckFile(path string) (Config, []Problem, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, nil, fmt.Errorf("read config: %w", err)
	}
	return Check(data, path, nil)
}
