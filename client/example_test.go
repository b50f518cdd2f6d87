package client_test

import (
	"context"
	"fmt"
	"log"

	"github.com/kmsbroker/kmsbroker/client"
)

// An application encrypts a record with its scope's database key and
// binds the record's id as AAD, so the envelope cannot be moved to another
// row.
func Example() {
	c, err := client.New(client.Config{
		Address:     "https://broker.internal:9200",
		Credentials: client.Token("kmsb.…"),
		CACertFile:  "/etc/myapp/broker-ca.pem",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx := context.Background()
	envelope, version, err := c.Encrypt(ctx, "o_acme", "database", []byte("4111 1111 1111 1111"), []byte("card:42"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("sealed with key version %d\n", version)

	plaintext, err := c.Decrypt(ctx, "o_acme", "database", envelope, []byte("card:42"))
	if err != nil {
		log.Fatal(err)
	}
	_ = plaintext
}

// A break-glass script authenticates with a one-time recovery token made
// by the recovery KMS block in recovery.hcl, fresh for every call, and
// creates the broker's first admin token.
func ExampleRecoveryCredentials() {
	ctx := context.Background()
	creds, err := client.RecoveryCredentials(ctx, "recovery.hcl", client.OneTimeOptions{
		PluginDirectory: "/usr/libexec/brokerd",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer creds.Close()

	c, err := client.New(client.Config{Address: "https://broker.internal:9200", Credentials: creds})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	_, secret, err := c.CreateToken(ctx, "first-admin", "admin", nil, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("store this token now:", len(secret) > 0)
}
