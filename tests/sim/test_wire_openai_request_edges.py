"""The OpenAI request side of the wire format: completions and chat bodies, messages, response formats, tools, tool choice. (work in progress)"""
