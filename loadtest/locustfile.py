"""LoRAX multi-LoRA load test: `locust -f loadtest/ --host http://127.0.0.1:8080 [UserClass ...]`.

User classes (name one or more to pick; with none, GenerateStreamUser runs):
  GenerateStreamUser  POST /generate_stream   (LoRAX native streaming; TTFT/ITL/TPOT)
  GenerateUser        POST /generate          (non-streaming; E2E plus LoRAX's x-* timing headers)
  ChatUser            POST /v1/chat/completions, stream=true
  CompletionsUser     POST /v1/completions, stream=true
Every option is a Locust custom argument: `locust -f loadtest/ --help` lists them. The code is in
`loraxkit.loadtest`; docs/loadtest.md explains options, metrics and the report.
"""

from locust import events

from loraxkit import wire
from loraxkit.loadtest.harness import install
from loraxkit.loadtest.users import LoraxUser

install(events)


class GenerateStreamUser(LoraxUser):
    route = wire.ROUTE_GENERATE_STREAM
    default_class = True


class GenerateUser(LoraxUser):
    route = wire.ROUTE_GENERATE


class ChatUser(LoraxUser):
    route = wire.ROUTE_CHAT


class CompletionsUser(LoraxUser):
    route = wire.ROUTE_COMPLETIONS
