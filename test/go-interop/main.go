// Command gointerop is the Go side of test/integration/go-interop.test.ts: a go-nsq v1.1.0
// service that reads and writes the Nest transport's wire format using only what README.md
// ("### Wire format") tells a Go developer. unwrap below is the README's snippet, copied
// verbatim (the Jest suite checks that it still matches the README); wrap is the encoder a Go
// developer would write from the README's format table.
//
// Subcommands (stdout carries only JSON lines; go-nsq's warnings and the READY line go to stderr):
//
//	consume      -nsqd ADDR -topic T -channel C -n N   one {"headers":{…}|null,"payload":"<base64>"} per message
//	publish      -nsqd ADDR -topic T -body-json JSON [-envelope [-headers JSON]]
//	reply-server -nsqd ADDR -topic T -channel C -n N   answers N NsqClient.send() requests {a,b} with {"sum":a+b}
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"sync"
	"time"

	"github.com/nsqio/go-nsq"
)

// ---- README.md, "### Wire format", verbatim ----

var magic = []byte{0x00, 'N', 'S', 'Q', 'E', 0x01}

func unwrap(body []byte) (headers map[string]string, payload []byte, err error) {
	if !bytes.HasPrefix(body, magic) {
		return nil, body, nil // a plain body
	}
	if len(body) < 10 {
		return nil, nil, errors.New("envelope cut short")
	}
	n := binary.BigEndian.Uint32(body[6:10])
	if uint64(n) > uint64(len(body)-10) { // not int(n): it overflows on 32-bit platforms
		return nil, nil, errors.New("envelope header block past the end")
	}
	if err = json.Unmarshal(body[10:10+n], &headers); err != nil {
		return nil, nil, err
	}
	if headers == nil { // the block was JSON null
		return nil, nil, errors.New("envelope headers are not a JSON object")
	}
	return headers, body[10+n:], nil
}

// ---- end of the README snippet ----

// wrap frames headers and payload as the README's table says: magic, uint32 big-endian length of
// the header JSON, the header JSON, the payload.
func wrap(headers map[string]string, payload []byte) ([]byte, error) {
	block, err := json.Marshal(headers)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(magic)+4+len(block)+len(payload))
	out = append(out, magic...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(block)))
	out = append(out, block...)
	return append(out, payload...), nil
}

// line is what consume and reply-server print per message: Headers is null for a plain body,
// Payload is base64 (encoding/json's form of []byte) so any bytes survive the trip.
type line struct {
	Headers map[string]string `json:"headers"`
	Payload []byte            `json:"payload"`
	Error   string            `json:"error,omitempty"`
}

var stdout = struct {
	sync.Mutex
	enc *json.Encoder
}{enc: json.NewEncoder(os.Stdout)}

func emit(l line) {
	stdout.Lock()
	defer stdout.Unlock()
	if err := stdout.enc.Encode(l); err != nil {
		log.Fatalf("writing stdout: %v", err)
	}
}

func config() *nsq.Config {
	cfg := nsq.NewConfig()
	// nsqd holds a lone message up to this long before flushing it to the consumer (default 250 ms).
	cfg.OutputBufferTimeout = 25 * time.Millisecond
	return cfg
}

func quiet() *log.Logger { return log.New(os.Stderr, "go-nsq ", log.LstdFlags) }

// consumeN subscribes to topic/channel and hands messages to handle until it succeeded n times;
// a handle error requeues the message (go-nsq's default). Prints READY on stderr once subscribed.
func consumeN(addr, topic, channel string, n int, timeout time.Duration, handle func(*nsq.Message) error) error {
	consumer, err := nsq.NewConsumer(topic, channel, config())
	if err != nil {
		return err
	}
	consumer.SetLogger(quiet(), nsq.LogLevelWarning)
	var mu sync.Mutex
	handled := 0
	done := make(chan struct{})
	consumer.AddHandler(nsq.HandlerFunc(func(m *nsq.Message) error {
		mu.Lock()
		full := handled >= n
		mu.Unlock()
		if full {
			// Arrived between the n-th message and the CLS: leave it for someone else.
			m.RequeueWithoutBackoff(0)
			return nil
		}
		if err := handle(m); err != nil {
			return err
		}
		mu.Lock()
		handled++
		if handled == n {
			close(done)
		}
		mu.Unlock()
		return nil
	}))
	if err := consumer.ConnectToNSQD(addr); err != nil {
		return fmt.Errorf("connecting to nsqd %s: %w", addr, err)
	}
	fmt.Fprintln(os.Stderr, "READY")
	var result error
	if n > 0 {
		select {
		case <-done:
		case <-time.After(timeout):
			mu.Lock()
			result = fmt.Errorf("timed out after %s with %d of %d messages from %s/%s", timeout, handled, n, topic, channel)
			mu.Unlock()
		}
	}
	// CLS, then the connection closes once the last FIN is out.
	consumer.Stop()
	<-consumer.StopChan
	return result
}

func runConsume(args []string) error {
	fs := flag.NewFlagSet("consume", flag.ExitOnError)
	addr := fs.String("nsqd", "", "nsqd TCP address")
	topic := fs.String("topic", "", "topic")
	channel := fs.String("channel", "gointerop", "channel")
	n := fs.Int("n", 1, "messages to read before exiting")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after")
	_ = fs.Parse(args)
	return consumeN(*addr, *topic, *channel, *n, *timeout, func(m *nsq.Message) error {
		headers, payload, err := unwrap(m.Body)
		if err != nil {
			emit(line{Payload: m.Body, Error: err.Error()})
			return nil
		}
		emit(line{Headers: headers, Payload: payload})
		return nil
	})
}

func newProducer(addr string) (*nsq.Producer, error) {
	producer, err := nsq.NewProducer(addr, config())
	if err != nil {
		return nil, err
	}
	producer.SetLogger(quiet(), nsq.LogLevelWarning)
	return producer, nil
}

func runPublish(args []string) error {
	fs := flag.NewFlagSet("publish", flag.ExitOnError)
	addr := fs.String("nsqd", "", "nsqd TCP address")
	topic := fs.String("topic", "", "topic")
	bodyJSON := fs.String("body-json", "", "the payload, a JSON document")
	envelope := fs.Bool("envelope", false, "send the payload in an envelope")
	headersJSON := fs.String("headers", "", `envelope headers, a JSON object of strings: {"k":"v"}`)
	_ = fs.Parse(args)
	payload := []byte(*bodyJSON)
	if !json.Valid(payload) {
		return fmt.Errorf("-body-json is not JSON: %q", *bodyJSON)
	}
	body := payload
	if *envelope {
		headers := map[string]string{}
		if *headersJSON != "" {
			if err := json.Unmarshal([]byte(*headersJSON), &headers); err != nil {
				return fmt.Errorf("-headers: %w", err)
			}
		}
		var err error
		if body, err = wrap(headers, payload); err != nil {
			return err
		}
	} else if *headersJSON != "" {
		return errors.New("-headers needs -envelope: a plain body has nowhere to carry them")
	}
	producer, err := newProducer(*addr)
	if err != nil {
		return err
	}
	defer producer.Stop()
	return producer.Publish(*topic, body)
}

// runReplyServer answers requests as README.md says: to the request's reply-to topic, an
// envelope with the same correlation-id, is-disposed "true" and a JSON payload, plus
// error "true" when the payload is an error object.
func runReplyServer(args []string) error {
	fs := flag.NewFlagSet("reply-server", flag.ExitOnError)
	addr := fs.String("nsqd", "", "nsqd TCP address")
	topic := fs.String("topic", "", "request topic")
	channel := fs.String("channel", "gointerop", "channel")
	n := fs.Int("n", 1, "requests to answer before exiting")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after")
	_ = fs.Parse(args)
	producer, err := newProducer(*addr)
	if err != nil {
		return err
	}
	defer producer.Stop()
	return consumeN(*addr, *topic, *channel, *n, *timeout, func(m *nsq.Message) error {
		headers, payload, err := unwrap(m.Body)
		if err != nil {
			emit(line{Payload: m.Body, Error: err.Error()})
			return nil
		}
		replyTo, id := headers["reply-to"], headers["correlation-id"]
		if replyTo == "" || id == "" {
			emit(line{Headers: headers, Payload: payload, Error: "not a request: reply-to or correlation-id missing"})
			return nil
		}
		reply := map[string]string{"correlation-id": id, "is-disposed": "true", "content-type": "application/json"}
		var answer any
		var req struct {
			A float64 `json:"a"`
			B float64 `json:"b"`
		}
		if err := json.Unmarshal(payload, &req); err != nil {
			reply["error"] = "true"
			answer = map[string]string{"status": "error", "message": "bad request: " + err.Error()}
		} else {
			answer = map[string]float64{"sum": req.A + req.B}
		}
		encoded, err := json.Marshal(answer)
		if err != nil {
			return err
		}
		body, err := wrap(reply, encoded)
		if err != nil {
			return err
		}
		if err := producer.Publish(replyTo, body); err != nil {
			return fmt.Errorf("replying to %s: %w", replyTo, err)
		}
		emit(line{Headers: headers, Payload: payload})
		return nil
	})
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("gointerop: ")
	if len(os.Args) < 2 {
		log.Fatal("usage: gointerop consume|publish|reply-server [flags]")
	}
	var err error
	switch os.Args[1] {
	case "consume":
		err = runConsume(os.Args[2:])
	case "publish":
		err = runPublish(os.Args[2:])
	case "reply-server":
		err = runReplyServer(os.Args[2:])
	default:
		log.Fatalf("unknown subcommand %q: consume, publish or reply-server", os.Args[1])
	}
	if err != nil {
		log.Fatal(err)
	}
}
