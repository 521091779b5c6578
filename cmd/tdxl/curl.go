package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/tdxl/tdxl/gateway/receipt"
	"github.com/tdxl/tdxl/verifier"
)

// maxResponse bounds a response body kept in memory (images are downloaded separately).
const maxResponse = 256 << 20

func (c *cli) curl(args []string) int {
	fs := flag.NewFlagSet("curl", flag.ContinueOnError)
	var o common
	o.register(fs)
	var headers multi
	method := fs.String("X", "", "request method (default GET, or POST with data)")
	fs.StringVar(method, "request", "", "same as -X")
	var data, dataBinary string
	fs.StringVar(&data, "d", "", "request body; @FILE reads a file")
	fs.StringVar(&data, "data", "", "same as -d")
	fs.StringVar(&dataBinary, "data-binary", "", "request body, bytes as they are; @FILE reads a file")
	fs.Var(&headers, "H", "request header 'Name: value'; repeatable")
	fs.Var(&headers, "header", "same as -H")
	output := fs.String("o", "", "write the response body to FILE instead of stdout")
	fs.StringVar(output, "output", "", "same as -o")
	silent := fs.Bool("s", false, "silent: no verdict summary (warnings and errors are still shown)")
	fs.BoolVar(silent, "silent", false, "same as -s")
	verbose := fs.Bool("v", false, "show request and response headers on stderr")
	fs.BoolVar(verbose, "verbose", false, "same as -v")
	saveImages := fs.String("save-images", "", "download every image URL of a text2image response into DIR")
	pos, err := parse(fs, args)
	if err != nil {
		return c.usageErr(err.Error(), "run `tdxl help`")
	}
	if len(pos) != 1 {
		return c.usageErr("curl takes exactly one URL", "e.g. tdxl curl -d @req.json https://pod:8443/api/text2image --policy p.yaml")
	}
	if data != "" && dataBinary != "" {
		return c.usageErr("-d and --data-binary cannot be combined", "")
	}
	body, err := readData(data, dataBinary)
	if err != nil {
		return c.usageErr(err.Error(), "")
	}
	target, err := url.Parse(pos[0])
	if err != nil || target.Scheme != "https" || target.Host == "" {
		return c.usageErr(fmt.Sprintf("bad URL %q", pos[0]), "tdxl talks https only (the key is pinned), e.g. https://pod:8443/api/text2image")
	}
	m := strings.ToUpper(*method)
	if m == "" {
		m = http.MethodGet
		if body != nil {
			m = http.MethodPost
		}
	}
	p, roots, err := o.loadPolicy(true)
	if err != nil {
		return c.failUsage(err)
	}
	sess, err := verifier.Connect(c.ctx, target.Scheme+"://"+target.Host, p, verifier.OnlineOptions{Roots: roots, Getter: o.getter(),
		AllowUnattested: o.allowUnattested, Timeout: o.timeout})
	if sess == nil {
		return c.failUsage(err)
	}
	c.printWarnings(sess.Report)
	if err != nil {
		if !*silent {
			c.summary(sess)
		}
		return c.fail(err)
	}
	if !*silent {
		c.summary(sess)
	}
	client, err := sess.Client()
	if err != nil {
		return c.fail(err)
	}
	req, err := http.NewRequestWithContext(c.ctx, m, target.String(), bytes.NewReader(body))
	if err != nil {
		return c.usageErr(err.Error(), "")
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	} else if data != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return c.usageErr(fmt.Sprintf("bad header %q", h), "write -H 'Name: value'")
		}
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if *verbose {
		fmt.Fprintf(c.stderr, "> %s %s\n", m, target)
		printHeaders(c.stderr, "> ", req.Header)
	}
	resp, err := client.Do(req)
	if err != nil {
		return c.fail(fmt.Errorf("%w: %v", verifier.ErrNetwork, err))
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return c.fail(fmt.Errorf("%w: reading response: %v", verifier.ErrNetwork, err))
	}
	if *verbose {
		fmt.Fprintf(c.stderr, "< %s\n", resp.Status)
		printHeaders(c.stderr, "< ", resp.Header)
	}
	rc, err := checkReceipt(sess, resp, body, respBody)
	if err != nil {
		return c.fail(err)
	}
	if rc != nil && !*silent {
		fmt.Fprintf(c.stderr, "tdxl: receipt verified: request sha256 %x…, %d image(s), signed by the attested key\n", rc.RequestSHA256[:6], len(rc.Images))
	}
	if *output != "" {
		if err := writeAtomic(*output, respBody); err != nil {
			c.errorf("%v", err)
			return exitInternal
		}
	} else {
		c.stdout.Write(respBody)
	}
	if *saveImages != "" && resp.StatusCode == http.StatusOK {
		if code := c.saveImages(client, target, respBody, rc, *saveImages, *silent); code != exitOK {
			return code
		}
	}
	if resp.StatusCode >= 400 {
		c.errorf("server answered %s", resp.Status)
		return exitNetwork
	}
	return exitOK
}

func readData(data, binary string) ([]byte, error) {
	v := data
	if binary != "" {
		v = binary
	}
	if v == "" {
		return nil, nil
	}
	if strings.HasPrefix(v, "@") {
		b, err := os.ReadFile(v[1:])
		if err != nil {
			return nil, fmt.Errorf("reading request body: %w", err)
		}
		if binary == "" {
			b = bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r"), nil), []byte("\n"), nil) // curl -d strips newlines
		}
		return b, nil
	}
	return []byte(v), nil
}

func printHeaders(w io.Writer, prefix string, h http.Header) {
	for k, vs := range h {
		for _, v := range vs {
			fmt.Fprintf(w, "%s%s: %s\n", prefix, k, v)
		}
	}
}

// summary prints the verdict on stderr.
func (c *cli) summary(s *verifier.Session) {
	r := s.Report
	if !r.Attested && r.Verdict == verifier.VerdictVerified {
		c.warn("%s is UNATTESTED: the request is sent to an unverified server (allowed by --allow-unattested/policy)", r.Target)
		return
	}
	var model string
	for _, rc := range r.Runtime {
		if rc.Type == "model" {
			model = fmt.Sprintf(", model %s (%s)", rc.Description, boundWord(rc.Bound))
		}
	}
	tcb := ""
	if r.TCBStatus != "" {
		tcb = ", TCB " + r.TCBStatus
	}
	fmt.Fprintf(c.stderr, "tdxl: %s: %s %s pod%s%s, key sha256:%s…\n", r.Verdict, r.Target, r.TEE, tcb, model, r.SPKISHA256[:min(16, len(r.SPKISHA256))])
}

func boundWord(b bool) string {
	if b {
		return "bound to RTMR3"
	}
	return "NOT bound to RTMR3"
}

// checkReceipt verifies the Tdxl-Receipt header (and the JSON "receipt" field) when present.
func checkReceipt(s *verifier.Session, resp *http.Response, reqBody, respBody []byte) (*receipt.Receipt, error) {
	enc := resp.Header.Get(receipt.Header)
	var field struct {
		Receipt string `json:"receipt"`
	}
	if json.Unmarshal(respBody, &field) == nil && field.Receipt != "" {
		if enc != "" && enc != field.Receipt {
			return nil, receiptErr("the receipt header and the receipt field differ")
		}
		enc = field.Receipt
	}
	if enc == "" {
		return nil, nil
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, receiptErr("receipt is not base64")
	}
	rc, err := receipt.VerifyReceipt(raw, s.Certificate.PublicKey)
	if err != nil {
		return nil, receiptErr(err.Error())
	}
	reqSum := sha256.Sum256(reqBody)
	if !bytes.Equal(rc.RequestSHA256, reqSum[:]) {
		return nil, receiptErr("the receipt is for another request body")
	}
	if !bytes.Equal(rc.SPKISHA256, s.SPKISHA256[:]) {
		return nil, receiptErr("the receipt names another key")
	}
	return rc, nil
}

func receiptErr(msg string) error {
	return &verifier.FactorError{Factor: "receipt", Reason: verifier.ErrReceipt, Err: fmt.Errorf("%s", msg),
		Hint: "the response is not vouched for by the attested key; do not trust it"}
}

// saveImages downloads every image URL of the response over the pinned client.
func (c *cli) saveImages(client *http.Client, target *url.URL, body []byte, rc *receipt.Receipt, dir string, silent bool) int {
	var resp struct {
		Output []struct {
			URL string `json:"url"`
		} `json:"output"`
		Data []struct {
			URL string `json:"url"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		c.errorf("--save-images: response is not JSON: %v", err)
		return exitRefused
	}
	var urls []string
	for _, o := range resp.Output {
		urls = append(urls, o.URL)
	}
	for _, o := range resp.Data {
		urls = append(urls, o.URL)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.errorf("%v", err)
		return exitInternal
	}
	for _, raw := range urls {
		if raw == "" {
			continue
		}
		u, err := target.Parse(raw)
		if err != nil || u.Host != target.Host || u.Scheme != "https" {
			c.warn("not downloading %q: not on the verified server %s", raw, target.Host)
			continue
		}
		// Relative to the verified origin, whatever host name the backend wrote.
		u.Scheme, u.Host = target.Scheme, target.Host
		req, _ := http.NewRequestWithContext(c.ctx, http.MethodGet, u.String(), nil)
		r, err := client.Do(req)
		if err != nil {
			return c.fail(fmt.Errorf("%w: downloading %s: %v", verifier.ErrNetwork, u, err))
		}
		img, err := io.ReadAll(io.LimitReader(r.Body, maxResponse))
		r.Body.Close()
		if err != nil || r.StatusCode != http.StatusOK {
			c.errorf("downloading %s: %s %v", u, r.Status, err)
			return exitNetwork
		}
		if rc != nil {
			if want, ok := rc.ImageSHA256(u.Path); ok {
				got := sha256.Sum256(img)
				if !bytes.Equal(want, got[:]) {
					return c.fail(receiptErr("image " + u.Path + " differs from the one the receipt names"))
				}
			}
		}
		name := strings.ReplaceAll(strings.Trim(path.Clean(u.Path), "/"), "/", "_")
		dst := filepath.Join(dir, name)
		if err := writeAtomic(dst, img); err != nil {
			c.errorf("%v", err)
			return exitInternal
		}
		if !silent {
			fmt.Fprintf(c.stderr, "tdxl: saved %s (%d bytes)\n", dst, len(img))
		}
	}
	return exitOK
}

// writeAtomic writes via a temporary file and rename (never a half-written file).
func writeAtomic(dst string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), dst)
	}
	if werr != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", dst, werr)
	}
	return nil
}
