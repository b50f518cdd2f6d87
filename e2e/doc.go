// Package e2e holds the end-to-end tests of kmsbroker: the built brokerd
// and plugins driven through their CLI and API against real KMS servers.
//
// The scenarios are the tests of this package. Each writes real HCL
// configs into its temporary directory, runs `brokerd server` and drives
// it only through the brokerd CLI and the Go SDK:
//
//   - TestWholeProduct: root on AWS KMS, worker-auth on Vault transit,
//     recovery and config on aead; bootstrap through a recovery token,
//     tokens, scopes, data with AAD, derivation, workers, rotation, audit.
//     Without Vault it runs with worker-auth on aead, says so in one log
//     line, and skips only its transit part.
//   - TestRootKeyRotationAcrossAWSKeys: previous-root, rewrap, old key
//     dropped and disabled.
//   - TestAWSAliasRepointed: old data survives an alias moved to a new key.
//   - TestAWSConfigWinsOverEnvironment: configured region and endpoint
//     beat AWS_* variables and are logged with their source; a key id
//     given bare and as an ARN are the same key.
//   - TestTransitKeyRotatedInVault, TestVaultTokenRevokedWhileRunning,
//     TestBrokerStartsWithUnreachableTransitRoot: Vault transit faults.
//   - TestConfigEncryptWithAWSKMS: `brokerd config encrypt` with the config
//     purpose on AWS KMS.
//   - TestAWSKMSPluginConformance, TestTransitPluginConformance: the
//     plugintest conformance suite against the built awskms and transit
//     plugins and the real servers (the plugins' own conformance tests
//     skip in the unit phase of `make test`, before local-kms is
//     installed).
//
// `make e2e` runs them verbosely and ends with one summary line that
// names the servers that really ran and the tests that skipped.
//
// The harness lives in small packages below this one:
//
//   - binaries builds brokerd and the plugins once per test binary.
//   - awskms runs an AWS KMS API server: the local-kms emulator, which it
//     installs with `go install` at a pinned version into a cache outside
//     the repository, or the endpoint in BROKER_E2E_AWS_ENDPOINT.
//   - vault runs Vault or OpenBao with transit: the server in VAULT_ADDR
//     and VAULT_TOKEN, or `vault server -dev` / `bao server -dev` from
//     PATH; without either, tests that need it skip with one line that
//     says what to install.
//   - proc starts those servers as child processes that die with the test.
//   - loopback hands out free loopback ports.
//   - brokerd runs `brokerd server` for the fault and hygiene suites:
//     config, start, SIGKILL, restart on the same store, CLI, status,
//     metrics and what /proc says about the process.
//
// Two more suites sit beside the scenarios: faults (plugin crash loops, a
// hanging plugin, SQLite made immutable or full, PostgreSQL cut through a
// proxy and its sessions ended with pg_terminate_backend, brokerd
// SIGKILLed during rotations on both stores) and hygiene (a full run at
// debug level searched for every secret in every output, and the same
// search over the log of a broker whose test plugin leaks on purpose).
//
// Environment:
//
//	BROKER_E2E_AWS_ENDPOINT          AWS KMS API to use instead of the emulator
//	BROKER_E2E_AWS_REGION            its region (default us-east-1)
//	BROKER_E2E_AWS_ACCESS_KEY_ID     its credentials (default "test", as LocalStack takes)
//	BROKER_E2E_AWS_SECRET_ACCESS_KEY
//	BROKER_E2E_CACHE                 where the emulator is installed
//	                                 (default: the user cache directory/kmsbroker-e2e)
//	VAULT_ADDR, VAULT_TOKEN          Vault to use instead of a dev server;
//	                                 the token must mount engines and write policies
//
// Every server announces itself in the test log with a line starting
// "e2e: AWS KMS API:" or "e2e: Vault:", and a missing Vault with
// "e2e: SKIP Vault transit:", so a run's output shows which servers were
// real.
package e2e
