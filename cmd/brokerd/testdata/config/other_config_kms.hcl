plugins { directory = "@PLUGINS@" }

kms "aead" {
  purpose = ["config"]
  key     = "@OTHER_KEY@"
}
