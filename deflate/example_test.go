package deflate_test

import (
	"bytes"
	"fmt"

	"github.com/wsgate/wsgate/deflate"
)

func ExampleNegotiate() {
	// Chromium's offer, answered with the default Config.
	resp, p, ok := deflate.Negotiate(nil, []byte("permessage-deflate; client_max_window_bits"), nil)
	fmt.Println(ok, string(resp))
	fmt.Printf("%+v\n", p)

	// The first offer has a duplicate parameter, so the second is taken;
	// its server_max_window_bits is honoured and echoed.
	offers := "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10, " +
		"permessage-deflate; server_max_window_bits=11; client_max_window_bits"
	resp, p, ok = deflate.Negotiate(nil, []byte(offers), &deflate.Config{ServerContextTakeover: true})
	fmt.Println(ok, string(resp))
	fmt.Printf("%+v\n", p)
	// Output:
	// true permessage-deflate; server_no_context_takeover; client_no_context_takeover
	// {ServerContextTakeover:false ClientContextTakeover:false ServerMaxWindowBits:15 ClientMaxWindowBits:15 HistoryBits:0}
	// true permessage-deflate; client_no_context_takeover; server_max_window_bits=11
	// {ServerContextTakeover:true ClientContextTakeover:false ServerMaxWindowBits:11 ClientMaxWindowBits:15 HistoryBits:11}
}

func ExampleCompressor() {
	cfg := &deflate.Config{ServerContextTakeover: true}
	comp, _ := deflate.NewCompressor(cfg) // one per event loop
	dec := deflate.NewDecompressor()      // one per event loop

	_, p, _ := deflate.Negotiate(nil, []byte("permessage-deflate"), cfg)
	var sendHist, recvHist deflate.History // per connection; zero until used

	// The client side of the same connection, for the demonstration: it
	// inflates with the server's window, which its Params call the client's.
	peer := deflate.Params{ClientContextTakeover: true, ClientMaxWindowBits: 15}

	msg := []byte(`{"e":"trade","s":"BTCUSDT","p":"43123.45","q":"0.0123","m":true,"M":true,"pad":"........"}` + "\n")
	msg = bytes.Repeat(msg, 3) // 273 bytes
	for i := range 3 {
		payload, ok := comp.AppendCompress(nil, msg, p, &sendHist)
		got, err := dec.AppendDecompress(nil, payload, 1<<20, peer, &recvHist)
		fmt.Println(i, ok, len(msg), "->", len(payload), bytes.Equal(got, msg), err)
	}
	sendHist.Release() // after idle time: no memory, next message starts afresh
	fmt.Println(sendHist.Len())
	// Output:
	// 0 true 273 -> 84 true <nil>
	// 1 true 273 -> 7 true <nil>
	// 2 true 273 -> 7 true <nil>
	// 0
}
