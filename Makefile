# NetSentry build, test and benchmark entry points.
#   make run    build and run the sensor with the embedded default config
#   make test   install what the tests need (Debian packages), then run every test
#   make bench  replay benchmark against tcpdump and ndpiReader
#   make install  binary, systemd unit, sysusers/tmpfiles entries, default config (PREFIX, DESTDIR)

GO        ?= go
BIN       := bin/netsentry
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
RUN_ARGS  ?=
# Debian packages the tests and benchmarks use (installed only when missing).
DEB_PKGS  := tshark tcpdump tcpreplay libndpi-bin netsniff-ng iproute2 ethtool clang llvm libbpf-dev libpcap-dev python3
# systemd: systemd-analyze, systemd-sysusers and systemd-tmpfiles for the unit tests.
DEB_PKGS  += systemd
# prometheus: promtool and a real server for the /metrics tests; wrk: make bench-api.
DEB_PKGS  += prometheus wrk
DEB_PKGS  += prometheus-alertmanager
# victoria-metrics: the peer of make bench-store.
DEB_PKGS  += victoria-metrics
# influxdb: the InfluxDB 1.x server the remote-storage tests write to (line protocol) and query back (InfluxQL).
DEB_PKGS  += influxdb
# softflowd, argus-server: the flow-meter peers of make bench-live (netsniff-ng's trafgen sends).
DEB_PKGS  += softflowd argus-server
# nfdump: nfcapd is the IPFIX collector of the flow-export tests (engine/ipfix, cmd/netsentry).
DEB_PKGS  += nfdump
# podman: make image builds the OCI image (deploy/container) and its test mounts it;
# libcap2-bin: setcap for the image binary's file capabilities; ca-certificates: the image's CA
# bundle; curl: the image test asks the API inside a network namespace.
DEB_PKGS  += podman libcap2-bin ca-certificates curl
# chromium: the headless browser the web dashboard tests drive (chromedp).
DEB_PKGS  += chromium
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck

.PHONY: all build run test test-short deps lint fuzz bench bench-live bench-api bench-store bench-alert install clean image web-vendor screenshots

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/netsentry

run: build
	./$(BIN) $(RUN_ARGS)

# deps installs the Debian packages that are missing; a no-op when all are there.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "make deps: run as root (or install:$$missing)"; exit 1; fi; \
		echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends $$missing; \
	fi

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint: $(STATICCHECK)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: the files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(STATICCHECK) ./...

# One package at a time (-p 1): the daemon tests measure floods, latency and
# memory on a 2-core box, and a second package's build or test beside them
# skews what they measure. About 15 minutes on an idle 2-core machine.
test: deps lint
	$(GO) test -p 1 -count=1 -timeout 30m ./...

test-short:
	$(GO) test -short ./...

# fuzz runs every fuzz target briefly (FUZZTIME each).
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$t"; $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

bench: deps build
	$(GO) run ./bench/replay -netsentry $(BIN)

# bench-live: flood and steady 64-byte traffic from trafgen on a veth pair,
# NetSentry beside tcpdump, softflowd and argus, 3 runs each (about 6 min);
# BENCH_LIVE_ARGS="-baseline OLD_BINARY" adds an older build to the runs.
BENCH_LIVE_ARGS ?=
bench-live: deps build
	$(GO) run ./bench/live -netsentry $(BIN) $(BENCH_LIVE_ARGS)

# bench-api: wrk against /api/v1/network/connections?limit=100 with 100k
# active flows while capturing, beside a trivial fasthttp handler; idle RSS.
bench-api: deps build
	$(GO) run ./bench/api -netsentry $(BIN)

# bench-store: a day of node_exporter-shaped host metrics (from real /proc
# readings) written to our store, to Prometheus's TSDB (promtool backfill)
# and to VictoriaMetrics: bytes/sample, ingest CPU, query_range latency,
# MB/day (also for the sensor's own default collection, counted from a
# daemon's /metrics).
bench-store: deps build
	$(GO) run ./bench/store -netsentry $(BIN)

# image builds the OCI image $(IMAGE) FROM scratch with podman
# (deploy/container/Containerfile): a static binary with the file
# capabilities cap_net_raw,cap_bpf=p, the CA bundle, the default config,
# user netsentry (10001). The context is assembled in bin/image.
IMAGE     ?= netsentry:latest
IMAGE_CTX := bin/image
image:
	rm -rf $(IMAGE_CTX)
	mkdir -p $(IMAGE_CTX)/state/data $(IMAGE_CTX)/alerts
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(IMAGE_CTX)/netsentry ./cmd/netsentry
	setcap cap_net_raw,cap_bpf=p $(IMAGE_CTX)/netsentry
	cp deploy/container/passwd deploy/container/group configs/netsentry.yaml /etc/ssl/certs/ca-certificates.crt $(IMAGE_CTX)/
	podman build --pull=never -q -f deploy/container/Containerfile -t $(IMAGE) $(IMAGE_CTX)

# bench-alert: packet (stamped by the generator) to webhook latency of 600
# alerts, NetSentry's worker feed beside Prometheus + Alertmanager at a 1 s
# scrape/evaluation on the same events; kernel drops during the run; the
# evaluator's CPU per million signals (1000 rules, 100k group keys).
bench-alert: deps build
	$(GO) run ./bench/alert -netsentry $(BIN)

# install puts the binary, the systemd unit, sysusers and tmpfiles entries and
# the default config in place; DESTDIR stages into a tree (packaging). The
# config is installed only when absent. With no DESTDIR on a box running
# systemd it also creates the user and directories and reloads systemd.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
UNITDIR     ?= /etc/systemd/system
SYSUSERSDIR ?= /usr/lib/sysusers.d
TMPFILESDIR ?= /usr/lib/tmpfiles.d
CONFDIR     ?= /etc/netsentry

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/netsentry
	install -d $(DESTDIR)$(UNITDIR)
	sed 's#^ExecStart=/usr/local/bin/netsentry #ExecStart=$(BINDIR)/netsentry #' systemd/netsentry.service > $(DESTDIR)$(UNITDIR)/netsentry.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/netsentry.service
	install -D -m 0644 systemd/netsentry.sysusers $(DESTDIR)$(SYSUSERSDIR)/netsentry.conf
	install -D -m 0644 systemd/netsentry.tmpfiles $(DESTDIR)$(TMPFILESDIR)/netsentry.conf
	install -d -m 0770 $(DESTDIR)$(CONFDIR)
	@if [ -e $(DESTDIR)$(CONFDIR)/netsentry.yaml ]; then \
		echo "kept $(DESTDIR)$(CONFDIR)/netsentry.yaml (new default: configs/netsentry.yaml)"; \
	else \
		echo "install -m 0640 configs/netsentry.yaml $(DESTDIR)$(CONFDIR)/netsentry.yaml"; \
		install -m 0640 configs/netsentry.yaml $(DESTDIR)$(CONFDIR)/netsentry.yaml; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
		set -e; \
		echo "systemd-sysusers, systemd-tmpfiles --create, systemctl daemon-reload"; \
		systemd-sysusers $(SYSUSERSDIR)/netsentry.conf; \
		systemd-tmpfiles --create $(TMPFILESDIR)/netsentry.conf; \
		systemctl daemon-reload; \
		echo "installed: systemctl enable --now netsentry"; \
	else \
		echo "on the target: systemd-sysusers; systemd-tmpfiles --create; systemctl daemon-reload; systemctl enable --now netsentry"; \
	fi

# web-vendor fetches the dashboard's npm pieces at pinned versions into
# web/static/vendor (committed, with their licences), so that a clone builds
# without npm. Run it only to change a version.
UPLOT_VERSION := 1.6.32
web-vendor:
	rm -rf web/.vendor-tmp && mkdir -p web/.vendor-tmp web/static/vendor/uplot
	cd web/.vendor-tmp && npm pack --silent uplot@$(UPLOT_VERSION) >/dev/null && tar xzf uplot-$(UPLOT_VERSION).tgz
	cp web/.vendor-tmp/package/dist/uPlot.esm.js web/.vendor-tmp/package/dist/uPlot.min.css web/.vendor-tmp/package/LICENSE web/static/vendor/uplot/
	echo "uplot $(UPLOT_VERSION) from the npm registry (npm pack uplot@$(UPLOT_VERSION)); MIT, see LICENSE" > web/static/vendor/uplot/VERSION
	rm -rf web/.vendor-tmp

# screenshots writes the dashboard's pages at 1280x800 and phone width to
# docs/screenshots (needs root: the test replays a capture on a veth pair).
screenshots: deps
	NETSENTRY_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run 'TestWebDashboard' ./cmd/netsentry/

clean:
	rm -rf bin
