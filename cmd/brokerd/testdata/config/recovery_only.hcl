plugins { directory = "@PLUGINS@" }

kms "aead" {
  purpose = ["recovery"]
  key     = "@KEY@"
  key_id  = "recovery-1"
}
