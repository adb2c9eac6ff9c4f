"""Chat requests, tool plans and calls, the response and chunk builders, and the SSE line reader of the wire format. (work in progress)"""
