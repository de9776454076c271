// Package remote sends the sensor's metrics to a remote time-series
// backend: Prometheus remote write 1.0 (snappy-compressed protobuf, which
// Prometheus, VictoriaMetrics, Mimir and Thanos Receive accept) or the
// InfluxDB line protocol over HTTP (1.x /write, 2.x /api/v2/write).
//
// # The queue
//
// Every tick the recorder hands to Writer.Append is one record of a
// bounded queue kept on disk, in the store's pebble database under keys
// starting 0x30 (0x30 'q' + big-endian sequence number: a record; 0x30 'v':
// the queue's format version). A record is a header (format, sample count,
// timestamp) and the samples, snappy-compressed (record.go). Append writes
// the record with a synced commit and returns: it never waits for the
// backend. One goroutine (the sender) reads the oldest records, sends them
// as one request, and deletes them once the backend took them (2xx) or
// refused them for good (400, 413, 422 and other 4xx but 401, 403, 404,
// 408 and 429: the data is the problem, sending it again cannot help);
// every other answer and every network error is retried, in order, with
// exponential backoff, so a backend that is down, or a restart of the
// sensor meanwhile, loses nothing. Past Options.QueueBytes (record bytes)
// the oldest records are deleted and their samples counted as dropped.
//
// Every series sent carries the label sensor (Options.Sensor), which
// replaces a label of that name, so that the series of several sensors
// writing to one backend are kept apart.
//
// # Threading and lifetimes
//
// Open starts the sender; Append is for one goroutine (the recorder) and
// Stats for any. Close stops the sender after a final flush bounded by
// Options.FlushTimeout (what is left stays queued for the next Open) and
// must come before the database is closed. A request that takes longer
// than Options.RequestTimeout is abandoned and retried.
package remote
