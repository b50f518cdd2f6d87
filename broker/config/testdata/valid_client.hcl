# A client-side recovery file: one block, no listener, no root.
kms "aead" {
  purpose = ["recovery"]
  key     = "file://testdata/recovery.key"
  key_id  = "env://KMSBROKER_TEST_KEY_ID"
}
