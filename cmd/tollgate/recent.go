package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/recent"
)

// Defaults of the recent-traffic ring (issue #16): a day, or 500,000
// queries, whichever is smaller; recent.RecordBytes (48) bytes a query and
// its names once, so about 26 MB when full (104 bytes until issue #17's
// fourth pass; 2,000,000 queries until issue #17 took 208 MB of the 250 MB the
// daemon is to stay under; docs/whatif.md#recent-traffic).
const (
	defaultRecentSize  = 500_000
	defaultRecentAge   = 24 * time.Hour
	defaultRecentFlush = time.Minute
)

func recentFlags(fs *flag.FlagSet, c *config) {
	fs.IntVar(&c.recentSize, "recent-size", defaultRecentSize, "check queries kept in the recent-traffic ring for POST /v1/what-if (48 bytes each and their names once, resident as they fill); 0 keeps none")
	fs.DurationVar(&c.recentMaxAge, "recent-max-age", defaultRecentAge, "queries older than this are left out of what-if replays and of the ring's file")
	fs.DurationVar(&c.recentFlush, "recent-flush-interval", defaultRecentFlush, "how often the recent-traffic ring is written to recent.ring in the data dir (and at shutdown): what a kill -9 can lose")
}

func (c *config) checkRecent() error {
	if c.recentSize < 0 || c.recentSize > 100_000_000 {
		return fmt.Errorf("-recent-size %d: want between 0 and 100000000", c.recentSize)
	}
	if c.recentMaxAge < 0 {
		return fmt.Errorf("-recent-max-age %v: must not be negative", c.recentMaxAge)
	}
	if c.recentFlush < time.Second {
		return fmt.Errorf("-recent-flush-interval %v: want at least 1s", c.recentFlush)
	}
	return nil
}

// startRecent makes the ring, loads what the last run saved and writes it
// behind; the returned stop writes it a last time. A damaged file is set
// aside (recent.ring.damaged) and the ring starts empty: the traffic of
// the past is a convenience, never a reason not to start.
func startRecent(c *config, log zerolog.Logger) (*recent.Ring, func()) {
	r := recent.New(c.recentSize, c.recentMaxAge)
	if r == nil {
		return nil, func() {}
	}
	path := filepath.Join(c.dataDir, recent.FileName)
	n, err := r.Load(path)
	switch {
	case errors.Is(err, recent.ErrCorrupt):
		aside := path + ".damaged"
		os.Rename(path, aside)
		log.Error().Err(err).Str("moved_to", aside).Msg("recent-traffic file damaged: starting with an empty ring")
	case err != nil:
		log.Error().Err(err).Msg("recent-traffic file unreadable: starting with an empty ring")
	case n > 0:
		log.Info().Int("queries", n).Str("file", path).Msg("recent traffic restored")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.Run(ctx, path, c.recentFlush, func(err error) {
			log.Error().Err(err).Msg("recent-traffic ring not written; the previous file stays")
		})
		close(done)
	}()
	return r, func() { cancel(); <-done }
}
