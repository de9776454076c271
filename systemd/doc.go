// Package systemd holds no Go code: this folder keeps NetSentry's systemd
// files, which `make install` puts in place:
//
//   - netsentry.service: the unit (Type=notify with a watchdog, the four
//     capabilities the capture needs, ProtectSystem=strict and the rest of
//     the sandbox); its comments say why each setting is there.
//   - netsentry.sysusers: the netsentry service account (sysusers.d).
//   - netsentry.tmpfiles: /etc/netsentry and its permissions (tmpfiles.d).
//
// Its tests check the unit with systemd-analyze verify and security (the
// exposure score), and that make install lands each file where the unit and
// the docs say, with sysusers and tmpfiles applied to the staged tree.
package systemd
