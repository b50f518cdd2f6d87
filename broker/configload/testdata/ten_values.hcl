# Ten values to encrypt: two on one line, quotes, braces and parentheses.
log_level = "{{encrypt(info)}}"

listener "tcp" {
  address     = "{{encrypt(127.0.0.1)}}:{{encrypt(9200)}}"
  tls_disable = true
}

kms "aead" {
  purpose = ["root"]
  key     = "{{encrypt(vT4AxBCfG1Y5nCaQYSbhmlhY3SN/F6j2h+jAMAxu1VU=)}}"
  key_id  = "{{encrypt(root \"primary\" {v1})}}"
}

kms "aead" {
  purpose = ["worker-auth"]
  key     = "{{encrypt(5k9ybzgrSdcCsBolzP3iv7I28ivuwg55pewEEcja5bk=)}}"
  key_id  = "{{encrypt(workers (a)}}"
}

kms "aead" {
  purpose = ["recovery"]
  key     = "{{encrypt(sZE7tJ12gvTV/eZAMGk0FuqhVgvBGDvQBv29qX5ReSI=)}}"
  key_id  = "{{encrypt(rec {x)})}}"
  # {{encrypt(a comment with "quotes", (parens) and {braces})}}
}

kms "aead" {
  purpose = ["config"]
  key     = "x9l3pB0mPZ0wOqjNpf1wg8oYJ6V7CkqVhqkD6wF3n0I="
  key_id  = "config-1"
}
