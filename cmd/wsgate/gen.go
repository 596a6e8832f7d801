package main

// The subcommands around the configuration: checkconfig, genconfig and
// gentoken.

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Exit codes of the subcommands: 1 a bad configuration or a failure, 2
// bad usage (as the flag package).
const (
	exitFail  = 1
	exitUsage = 2
)

// runCheckConfig is "wsgate checkconfig [-config FILE]": it loads the
// configuration as the gateway would (file, WSGATE_* variables) and
// reports the first problem, naming its key.
func runCheckConfig(args []string, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wsgate checkconfig", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "configuration `file`, JSON or YAML (.yaml, .yml); empty: the embedded default")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: wsgate checkconfig [-config FILE]\n\n"+
			"Checks the configuration the gateway would run with (the file and the WSGATE_*\n"+
			"environment variables): exit 0, or 1 with the bad key named.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return usageExit(err)
	}
	if _, _, err := loadSettings(*config, environ, nil, true); err != nil {
		fmt.Fprintln(stderr, "wsgate: bad configuration:", err)
		return exitFail
	}
	name := *config
	if name == "" {
		name = "the embedded default configuration"
	}
	fmt.Fprintf(stdout, "%s: ok\n", name)
	return 0
}

// runGenConfig is "wsgate genconfig": it prints the embedded default
// configuration, commented, with a random HMAC secret and API key.
func runGenConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wsgate genconfig", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: wsgate genconfig > wsgate.yaml\n\n"+
			"Prints a commented configuration file (YAML) with a random HMAC secret and API\n"+
			"key; wsgate -config wsgate.yaml runs with it.\n")
	}
	if err := parseFlags(fs, args); err != nil {
		return usageExit(err)
	}
	b, err := genConfig()
	if err != nil {
		fmt.Fprintln(stderr, "wsgate:", err)
		return exitFail
	}
	_, _ = stdout.Write(b)
	return 0
}

// The embedded configuration's empty secrets, which genconfig fills in.
var (
	secretLine = []byte("\n    hmac_secret_key: \"\"\n")
	apiKeyLine = []byte("\n  key: \"\"\n")
)

func genConfig() ([]byte, error) {
	if bytes.Count(defaultConfig, secretLine) != 1 || bytes.Count(defaultConfig, apiKeyLine) != 1 {
		return nil, errors.New("the embedded configuration lost its hmac_secret_key or http_api.key line")
	}
	b := bytes.Replace(defaultConfig, secretLine, fmt.Appendf(nil, "\n    hmac_secret_key: %q\n", random()), 1)
	return bytes.Replace(b, apiKeyLine, fmt.Appendf(nil, "\n  key: %q\n", random()), 1), nil
}

// runGenToken is "wsgate gentoken -user ID [-ttl D] [-config FILE]": it
// prints a connection JWT (HS256) for user ID, signed with the configured
// HMAC secret and carrying the configured audience and issuer.
func runGenToken(args []string, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wsgate gentoken", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "configuration `file` whose client.token.hmac_secret_key signs the token")
	user := fs.String("user", "", "the token's user `ID` (claim sub); required")
	ttl := fs.Duration("ttl", 24*time.Hour, "the token expires after this `duration` (claim exp); 0: never")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: wsgate gentoken -user ID [-ttl 24h] [-config FILE]\n\n"+
			"Prints a connection token for trying the gateway, signed with the configured\n"+
			"HMAC secret (the file's, or WSGATE_CLIENT_TOKEN_HMAC_SECRET_KEY).\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return usageExit(err)
	}
	if *user == "" || *ttl < 0 {
		fmt.Fprintln(stderr, "wsgate gentoken: -user is required and -ttl must not be negative")
		fs.Usage()
		return exitUsage
	}
	// Without a file the configuration is the gateway's: the embedded
	// default with what the environment sets, and random secrets for what
	// it does not; a random HMAC secret would sign a useless token.
	st, _, err := loadSettings(*config, environ, nil, true)
	if err != nil {
		fmt.Fprintln(stderr, "wsgate: bad configuration:", err)
		return exitFail
	}
	tc := st.Client.Token
	if tc.HMACSecretKey == "" || *config == "" && !slices.ContainsFunc(environ, func(kv string) bool {
		name := envName("client.token.hmac_secret_key") + "="
		return strings.HasPrefix(kv, name) && len(kv) > len(name)
	}) {
		fmt.Fprintln(stderr, "wsgate gentoken: no HMAC secret configured: give -config FILE or WSGATE_CLIENT_TOKEN_HMAC_SECRET_KEY")
		return exitFail
	}
	claims := jwt.MapClaims{"sub": *user, "iat": time.Now().Unix()}
	if *ttl > 0 {
		claims["exp"] = time.Now().Add(*ttl).Unix()
	}
	if tc.Audience != "" {
		claims["aud"] = tc.Audience
	}
	if tc.Issuer != "" {
		claims["iss"] = tc.Issuer
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(tc.HMACSecretKey))
	if err != nil {
		fmt.Fprintln(stderr, "wsgate gentoken:", err)
		return exitFail
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

// parseFlags parses a subcommand's flags; arguments left over are an
// error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return errors.New("unexpected argument")
	}
	return nil
}

// usageExit is the exit code after a flag error: 0 for -h.
func usageExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return exitUsage
}
