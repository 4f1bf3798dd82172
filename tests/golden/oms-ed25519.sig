{
  "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
  "verificationMaterial": {
    "publicKey": {
      "hint": "90fa1e0cf0ca84d890a3007524aa970491567dea54e15f1b258ce5622c2d8717"
    },
    "tlogEntries": []
  },
  "dsseEnvelope": {
    "payload": "eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEiLCJwcmVkaWNhdGUiOnsicmVzb3VyY2VzIjpbeyJhbGdvcml0aG0iOiJzaGEyNTYiLCJkaWdlc3QiOiIwOWQzNDNjMzdkZTBiYmExNDNiN2ZmNDVmODJjMGFiOTMwODUzMWRjYzc4YjU2YjhlYjQwYzU5MzhjNGJlNDE4IiwibmFtZSI6ImNvbmZpZy5qc29uIn0seyJhbGdvcml0aG0iOiJzaGEyNTYiLCJkaWdlc3QiOiIxMGZjM2M1MWExNTJlOTBlNWI5MDMxOWI2MDFkOTJjY2YzNzI5MGVmNTNjMzVmZjkyNTA3Njg3ZDhhOTExYTA4IiwibmFtZSI6IndlaWdodHMuYmluIn1dLCJzZXJpYWxpemF0aW9uIjp7ImFsbG93X3N5bWxpbmtzIjpmYWxzZSwiaGFzaF90eXBlIjoic2hhMjU2IiwiaWdub3JlX3BhdGhzIjpbIi5naXQiLCIuZ2l0YXR0cmlidXRlcyIsIi5naXRodWIiLCIuZ2l0aWdub3JlIl0sIm1ldGhvZCI6ImZpbGVzIn19LCJwcmVkaWNhdGVUeXBlIjoiaHR0cHM6Ly9tb2RlbF9zaWduaW5nL3NpZ25hdHVyZS92MS4wIiwic3ViamVjdCI6W3siZGlnZXN0Ijp7InNoYTI1NiI6IjI1Y2UwNGU1YzcyOWQ4MDczM2VkNDQ4ZDQ3OWY4N2M0NDkyMTE4NjBkZjkzOTgwNTYwZTBlMTkyYTIxMjFjMDkifSwibmFtZSI6ImdvbGRlbi1tb2RlbCJ9XX0=",
    "payloadType": "application/vnd.in-toto+json",
    "signatures": [
      {
        "sig": "VKtroXVGCbChHl4wzyaxWEZREZ7z0gtcunH8YrLM1EABp8jF6jAzvMXkpOjf1vyNka5bfwF1tfB3VncLyrDZAQ==",
        "keyid": ""
      }
    ]
  }
}
