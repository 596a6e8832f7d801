package natsbroker

import (
	"context"
)

// HistorySize implements wsgate.HistorySizer with the JetStream stream's
// state, which every node sharing the stream sees: its messages (the
// publications held, and the position markers of channels whose history
// was removed or never written) and its bytes as the NATS server counts
// them (data, headers and subjects). It asks the server, within
// Options.Timeout, and fails at once while NATS is unreachable.
func (b *Broker) HistorySize() (publications, bytes int64, err error) {
	if !b.nc.IsConnected() {
		return 0, 0, ErrNotConnected
	}
	s, err := b.getStream()
	if err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.o.Timeout)
	defer cancel()
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	return int64(info.State.Msgs), int64(info.State.Bytes), nil
}
