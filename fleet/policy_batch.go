package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/service"
)

// Headers of JetStream atomic batch publish (nats-server 2.12+,
// server/stream.go): every message of a batch carries the batch id and its
// place in it; the last one carries the commit. The server stages the
// messages and stores them all, or none, when the commit arrives.
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

// JetStream error codes the batch path tells apart (server/errors.json).
const (
	errCodeWrongLastSeq      = 10071 // a record's expected revision is not the bucket's
	errCodeWrongLastSeqConst = 10164 // the record is in another change in flight
	errCodeBatchTooLarge     = 10199 // more records than the server's batch limit
	errCodeAtomicDisabled    = 10174 // the stream does not allow atomic publish
)

// policyStream is the stream behind the policy bucket.
const policyStream = "KV_" + PolicyBucket

// enableAtomic turns on atomic batch publish on the policy bucket's
// stream (a KV bucket is created without it): a change of several records
// is then stored whole or not at all. It reports whether the stream allows
// it; a server older than 2.12 ignores the setting, and this node then
// refuses multi-record policy changes rather than write them one by one.
func (p *Policy) enableAtomic(ctx context.Context) bool {
	st, err := p.c.JS.Stream(ctx, policyStream)
	if err != nil {
		p.log.Warn().Err(err).Str("stream", policyStream).Msg("reading the policy stream failed: multi-record policy changes refused until it is bound again")
		return false
	}
	cfg := st.CachedInfo().Config
	if cfg.AllowAtomicPublish {
		return true
	}
	cfg.AllowAtomicPublish = true
	st, err = p.c.JS.UpdateStream(ctx, cfg)
	if err == nil && st.CachedInfo().Config.AllowAtomicPublish {
		p.log.Info().Str("stream", policyStream).Msg("atomic batch publish enabled on the policy stream")
		return true
	}
	p.log.Error().Err(err).Str("stream", policyStream).Msg("the policy stream does not take atomic batch publish (nats-server 2.12 or later is needed): changes of more than one policy record (bulk account changes, a template with its accounts) are refused; single-record changes work")
	return false
}

// batchID names one change's batch: at most 64 bytes (the server's
// limit), whatever the node name's length.
func batchID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

// pubAck is the server's answer to a JetStream publish.
type pubAck struct {
	Seq   uint64 `json:"seq"`
	Batch string `json:"batch"`
	Count int    `json:"count"`
	Error *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// writeBatch writes a change of several policy records as one atomic
// batch, each record compare-and-set on the revision this node applied:
// all records are stored, or none is. It returns each record's new
// revision, in order.
func (p *Policy) writeBatch(ctx context.Context, recs []outRecord, id string) ([]uint64, error) {
	if !p.atomic.Load() {
		return nil, &service.UnavailableError{Msg: fmt.Sprintf("fleet: this change touches %d policy records and the NATS server does not take atomic batches on %s (nats-server 2.12 or later is needed); nothing was changed: change one record at a time, or upgrade the NATS servers", len(recs), policyStream)}
	}
	bid := batchID(id)
	expects := make([]uint64, len(recs))
	var ack pubAck
	for i, r := range recs {
		val, _ := json.Marshal(r.rec)
		m := nats.NewMsg("$KV." + PolicyBucket + "." + r.key)
		m.Data = val
		p.mu.Lock()
		expects[i] = p.revs[r.key]
		p.mu.Unlock()
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(expects[i], 10))
		m.Header.Set(hdrBatchID, bid)
		m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		if i < len(recs)-1 {
			// staged by the server; a lost or refused one makes the
			// commit fail as an incomplete batch
			if err := p.c.NC.PublishMsg(m); err != nil {
				return nil, &service.UnavailableError{Msg: "fleet: the policy bucket did not take the change: " + err.Error() + " (nothing was changed)"}
			}
			continue
		}
		m.Header.Set(hdrBatchCommit, "1")
		resp, err := p.c.NC.RequestMsgWithContext(ctx, m)
		if err != nil {
			return nil, &service.UnavailableError{Msg: "fleet: the policy bucket did not answer the change: " + err.Error() + " (if it was stored, every node applies all of it)"}
		}
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return nil, &service.UnavailableError{Msg: "fleet: unreadable answer from the policy bucket: " + err.Error()}
		}
	}
	if e := ack.Error; e != nil {
		switch e.ErrCode {
		case errCodeWrongLastSeq, errCodeWrongLastSeqConst:
			return nil, p.batchConflict(ctx, recs, expects)
		case errCodeBatchTooLarge:
			return nil, &service.InvalidError{Err: &policy.FieldError{Field: "body", Msg: fmt.Sprintf("this change touches %d policy records; the fleet writes a change whole or not at all and the NATS server takes at most %s records in one (%s): split the bulk change; nothing was changed", len(recs), lastWord(e.Description), e.Description)}}
		case errCodeAtomicDisabled:
			p.atomic.Store(false)
		}
		return nil, &service.UnavailableError{Msg: fmt.Sprintf("fleet: the policy bucket refused the change: %s (error %d; nothing was changed)", e.Description, e.ErrCode)}
	}
	if ack.Count != len(recs) || ack.Seq < uint64(len(recs)) {
		return nil, &service.UnavailableError{Msg: fmt.Sprintf("fleet: the policy bucket acknowledged %d of %d records of a batch", ack.Count, len(recs))}
	}
	// a batch is stored in one piece: its records have consecutive revisions
	revs := make([]uint64, len(recs))
	for i := range recs {
		revs[i] = ack.Seq - uint64(len(recs)-1-i)
	}
	return revs, nil
}

// batchConflict finds the record of a refused batch that another node
// changed, for a 409 naming it.
func (p *Policy) batchConflict(ctx context.Context, recs []outRecord, expects []uint64) error {
	for i, r := range recs {
		cur := uint64(0)
		e, err := p.kv.Get(ctx, r.key)
		switch {
		case err == nil:
			cur = e.Revision()
		case errors.Is(err, jetstream.ErrKeyNotFound):
		default:
			continue
		}
		if cur != expects[i] {
			return &service.RevisionConflictError{Key: r.key, Expected: expects[i], Current: cur}
		}
	}
	// changed and changed back, or written by a change still in flight
	return &service.RevisionConflictError{Key: recs[0].key, Expected: expects[0]}
}

// lastWord is the last space-separated word of s (the figure at the end
// of a server error).
func lastWord(s string) string {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ' ' {
			return s[i+1:]
		}
	}
	return s
}
