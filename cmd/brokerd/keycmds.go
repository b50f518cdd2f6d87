package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kmsbroker/kmsbroker/client"
	apiv1 "github.com/kmsbroker/kmsbroker/proto/api/v1"
)

func runRotateKeys(env *cmdEnv, args []string) error {
	var rewrap bool
	cf, id, err := scopeFlags(env, "scopes rotate-keys", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&rewrap, "rewrap", false, "also re-encrypt older data key versions under the new KEK")
	})
	if err != nil {
		return err
	}
	return cf.call(func(ctx context.Context, c *client.Client) error {
		sc, err := c.RotateKeys(ctx, id, rewrap)
		if err != nil {
			return err
		}
		return printScopes(env.stdout, cf.format, sc)
	})
}

func runRewrap(env *cmdEnv, args []string) error {
	var cf clientFlags
	var id string
	var all bool
	fs := newFlags(env, "scopes rewrap", "")
	cf.register(fs, env)
	fs.StringVar(&id, "id", "", "scope to rewrap")
	fs.BoolVar(&all, "all", false, "rewrap every scope")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (id == "") == !all {
		return errors.New("give exactly one of -id=ID and -all")
	}
	return cf.call(func(ctx context.Context, c *client.Client) error {
		rewrap := func(ctx context.Context) (*apiv1.RewrapKeysResponse, error) { return c.RewrapKeys(ctx, id) }
		if all {
			rewrap = c.RewrapAllKeys
		}
		res, err := rewrap(ctx)
		if err != nil {
			return err
		}
		if cf.format == "json" {
			return printJSON(env.stdout, res)
		}
		_, err = fmt.Fprintf(env.stdout, "Rewrapped %d root key versions in %d scopes.\n", res.GetRootKeyVersions(), res.GetScopes())
		return err
	})
}

func runKeyVersions(env *cmdEnv, args []string) error {
	cf, id, err := scopeFlags(env, "scopes key-versions", args, nil)
	if err != nil {
		return err
	}
	return cf.call(func(ctx context.Context, c *client.Client) error {
		versions, err := c.KeyVersions(ctx, id)
		if err != nil {
			return err
		}
		if cf.format == "json" {
			return printJSON(env.stdout, &apiv1.ListKeyVersionsResponse{Versions: versions})
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tVERSION\tKEK VERSION\tWRAPPED BY\tACTIVE\tCREATED\tDESTROYED")
		for _, v := range versions {
			destroyed := ""
			if v.GetDestroyTime() != nil {
				destroyed = v.GetDestroyTime().AsTime().Format(time.RFC3339)
			}
			kek := ""
			if v.GetKind() != "root" {
				kek = fmt.Sprint(v.GetRootKeyVersion())
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%t\t%s\t%s\n", v.GetId(), v.GetKind(), v.GetVersion(), kek,
				v.GetWrappingKeyId(), v.GetActive(), v.GetCreateTime().AsTime().Format(time.RFC3339), destroyed)
		}
		return tw.Flush()
	})
}

func runDestroyKeyVersion(env *cmdEnv, args []string) error {
	var versionID string
	cf, id, err := scopeFlags(env, "scopes destroy-key-version", args, func(fs *flag.FlagSet) {
		fs.StringVar(&versionID, "version-id", "", "stable id of the key version, from scopes key-versions (required)")
	})
	if err != nil {
		return err
	}
	if versionID == "" {
		return errors.New("-version-id is required")
	}
	return cf.call(func(ctx context.Context, c *client.Client) error {
		if err := c.DestroyKeyVersion(ctx, id, versionID); err != nil {
			return err
		}
		_, err := fmt.Fprintf(env.stdout, "Destroyed key version %s of scope %s.\n", versionID, id)
		return err
	})
}

func runDeriveKey(env *cmdEnv, args []string) error {
	var cf clientFlags
	var scope, user, session, encoding string
	var length int
	var version uint
	fs := newFlags(env, "derive-key", "")
	cf.register(fs, env)
	fs.StringVar(&scope, "scope", "", "scope id (required)")
	fs.StringVar(&user, "user", "", "user id bound into the key (required)")
	fs.StringVar(&session, "session", "", "session id bound into the key (required)")
	fs.IntVar(&length, "length", 32, "key length in bytes")
	fs.UintVar(&version, "key-version", 0, "sessions key version to derive from; 0 is the newest")
	fs.StringVar(&encoding, "encoding", "base64", "output encoding: base64 or hex")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case scope == "" || user == "" || session == "":
		return errors.New("-scope, -user and -session are required")
	case encoding != "base64" && encoding != "hex":
		return fmt.Errorf("-encoding=%q: use base64 or hex", encoding)
	case length <= 0:
		return fmt.Errorf("-length=%d: must be positive", length)
	case version > 1<<32-1:
		return fmt.Errorf("-key-version=%d: too large", version)
	}
	return cf.call(func(ctx context.Context, c *client.Client) error {
		key, v, err := c.DeriveKey(ctx, scope, user, session, length, uint32(version))
		if err != nil {
			return err
		}
		if cf.format == "json" {
			return printJSON(env.stdout, &apiv1.DeriveKeyResponse{Key: key, KeyVersion: v})
		}
		out := base64.StdEncoding.EncodeToString(key)
		if encoding == "hex" {
			out = hex.EncodeToString(key)
		}
		_, err = fmt.Fprintf(env.stdout, "%s\nkey_version=%d\n", out, v)
		return err
	})
}

func runTokensCreate(env *cmdEnv, args []string) error {
	var cf clientFlags
	var name, role, scopes string
	var ttl time.Duration
	fs := newFlags(env, "tokens create", "")
	cf.register(fs, env)
	fs.StringVar(&name, "name", "", "token name (required)")
	fs.StringVar(&role, "role", "", "admin or app (required)")
	fs.StringVar(&scopes, "scopes", "", "comma-separated scopes the token is limited to; empty is every scope")
	fs.DurationVar(&ttl, "ttl", 0, "lifetime, for example 720h; 0 never expires")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if name == "" || role == "" {
		return errors.New("-name and -role are required")
	}
	if ttl < 0 || ttl%time.Second != 0 {
		return fmt.Errorf("-ttl=%s: want 0 (never expires) or a whole number of seconds, for example 720h", ttl)
	}
	var list []string
	if scopes != "" {
		for _, s := range strings.Split(scopes, ",") {
			if s = strings.TrimSpace(s); s == "" {
				return fmt.Errorf("-scopes=%q: empty scope id in the list", scopes)
			}
			list = append(list, s)
		}
	}
	return cf.call(func(ctx context.Context, c *client.Client) error {
		tok, secret, err := c.CreateToken(ctx, name, role, list, ttl)
		if err != nil {
			return err
		}
		if cf.format == "json" {
			return printJSON(env.stdout, &apiv1.CreateTokenResponse{Token: tok, Secret: secret})
		}
		_, err = fmt.Fprintf(env.stdout, "Token %s (%s, role %s). Store it now; it is not shown again:\n%s\n",
			tok.GetId(), tok.GetName(), tok.GetRole(), secret)
		return err
	})
}

func runTokensList(env *cmdEnv, args []string) error {
	var cf clientFlags
	fs := newFlags(env, "tokens list", "")
	cf.register(fs, env)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return cf.call(func(ctx context.Context, c *client.Client) error {
		toks, err := c.ListTokens(ctx)
		if err != nil {
			return err
		}
		if cf.format == "json" {
			return printJSON(env.stdout, &apiv1.ListTokensResponse{Tokens: toks})
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tSCOPES\tCREATED\tEXPIRES\tREVOKED")
		for _, t := range toks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.GetId(), t.GetName(), t.GetRole(),
				strings.Join(t.GetScopes(), ","), t.GetCreateTime().AsTime().Format(time.RFC3339),
				optTime(t.GetExpireTime() != nil, t.GetExpireTime().AsTime()),
				optTime(t.GetRevokeTime() != nil, t.GetRevokeTime().AsTime()))
		}
		return tw.Flush()
	})
}

func optTime(ok bool, t time.Time) string {
	if !ok {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func runTokensRevoke(env *cmdEnv, args []string) error {
	var cf clientFlags
	var id string
	fs := newFlags(env, "tokens revoke", "")
	cf.register(fs, env)
	fs.StringVar(&id, "id", "", "token id (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if id == "" {
		return errors.New("-id is required")
	}
	return cf.call(func(ctx context.Context, c *client.Client) error {
		if err := c.RevokeToken(ctx, id); err != nil {
			return err
		}
		_, err := fmt.Fprintf(env.stdout, "Revoked token %s.\n", id)
		return err
	})
}
