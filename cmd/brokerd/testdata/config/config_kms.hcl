plugins { directory = "@PLUGINS@" }

kms "aead" {
  purpose = ["config"]
  key     = "@CONFIG_KEY@"
}
