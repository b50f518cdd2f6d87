storage "postgres" {
  url = "env://KMSBROKER_TEST_UNSET_PG_URL"
}
