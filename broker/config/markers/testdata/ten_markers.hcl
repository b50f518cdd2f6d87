# Ten values to encrypt: two on one line, quotes, braces and parentheses.
kms "awskms" {
  purpose    = ["root"]
  access_key = "{{encrypt(AKIAEXAMPLE)}}"
  secret_key = "{{encrypt(wJalr\"XUtn(FEMI)/K7MDENG{bPxRfi})}}"
  session_token = "{{encrypt(a}b{c)d(e)})}}" # ends with ")}"
}

kms "transit" {
  purpose = ["worker-auth"]
  token     = "{{encrypt(hvs.CAESI)}}"
  namespace = "{{encrypt(team-a)}}"
  address = "https://{{encrypt(vault.internal)}}:8200/{{encrypt(v1)}}"
  key_name = <<EOT
{{encrypt(heredoc "value" with {{braces}})}}
EOT
}

kms "aead" {
  purpose = ["recovery"]
  key     = "{{encrypt(c2VjcmV0LWtleS1ieXRlcy10aGF0LWFyZS0zMi1ieXRlcyE=)}}"
  key_id  = "{{encrypt(ünïcödé ✓)}}"
}
