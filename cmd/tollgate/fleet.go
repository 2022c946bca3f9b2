package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/fleet"
	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/store"
)

// runFleet implements `tollgate fleet seed`: the one way a fleet's empty
// policy bucket gets its first policy, from one node's data file. A bucket
// that already holds a policy is refused unless -force says so.
func runFleet(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "seed" {
		fmt.Fprintf(stderr, "usage: tollgate fleet seed -data-dir DIR -nats URL[,URL…] [-force]\n")
		return exitUsage
	}
	fs := flag.NewFlagSet("tollgate fleet seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg fleet.Config
	cfg.RegisterFlags(fs)
	dataDir := fs.String("data-dir", "./data", "the data dir whose policy seeds the fleet (opened read-only: stop its tollgate first, or copy the dir)")
	force := fs.Bool("force", false, "replace a policy the bucket already holds with this data file's (records it does not hold are deleted)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: tollgate fleet seed -data-dir DIR -nats URL[,URL…] [-force]\n\n"+
			"Loads the fleet's policy bucket (%s) from a single node's data file: accounts, operator\n"+
			"settings, stored high-risk list and rate deck, locks and origin state. Every tollgate\n"+
			"started with -nats refuses policy writes until the bucket is seeded. A bucket that\n"+
			"already holds a policy is refused unless -force is given. TOLLGATE_ variables apply\n"+
			"as for the daemon.\n\n", fleet.PolicyBucket)
		fs.PrintDefaults()
	}
	if err := parseWithEnv(fs, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return exitUsage
	}
	if !cfg.Enabled() {
		fmt.Fprintln(stderr, "tollgate fleet seed: -nats is required")
		return exitUsage
	}
	st, err := store.Open(*dataDir, store.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		fmt.Fprintln(stderr, "tollgate fleet seed:", err)
		return exitError
	}
	defer st.Close()
	c, err := fleet.Connect(cfg, zerolog.Nop())
	if err != nil {
		fmt.Fprintln(stderr, "tollgate fleet seed:", err)
		return exitUsage
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	for !c.Connected() {
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "tollgate fleet seed: no NATS server reachable at %s within %v\n", cfg.URLs, *timeout)
			return exitError
		}
		time.Sleep(100 * time.Millisecond)
	}
	res, err := fleet.Seed(ctx, c, st, st.Path(), *force)
	if err != nil {
		if res.Records > 0 {
			fmt.Fprintf(stderr, "tollgate fleet seed: %v (%d records were written before the failure and the bucket is not marked seeded; run it again with -force)\n", err, res.Records)
		} else {
			fmt.Fprintln(stderr, "tollgate fleet seed: nothing was written:", err)
		}
		return exitError
	}
	fmt.Fprintf(stdout, "seeded %s from %s: %d records, %d deleted, revision %d\n", fleet.PolicyBucket, st.Path(), res.Records, res.Tombstones, res.Revision)
	return 0
}

// startFleet connects to the fleet when -nats is set and starts keeping
// the policy in step; without -nats it returns nil and a no-op stop. The
// node serves its cached policy at once: NATS being down never holds the
// start up.
func startFleet(cfg fleet.Config, svc *service.Service, log zerolog.Logger) (*fleet.Policy, func(), error) {
	if !cfg.Enabled() {
		return nil, func() {}, nil
	}
	c, err := fleet.Connect(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	p := fleet.NewPolicy(c, svc, log)
	ctx, cancel := context.WithCancel(context.Background())
	p.Start(ctx)
	log.Info().Str("node", c.Node).Str("nats", cfg.URLs).Int("replicas", cfg.Replicas).
		Msg("fleet mode: the policy lives in the fleet's bucket; this node serves its cached copy until in step")
	return p, func() { p.Leave(); cancel(); c.Close() }, nil
}
