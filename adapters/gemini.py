"""Gemini through the google-genai SDK.

One client per process, created on first use: the SDK dominates import time, so a cold instance
that only sees no-op events never loads it. SDK retries are off (the worker maps faults itself,
within its time budget), and there is no base-URL override of our own — the SDK's
`GOOGLE_GEMINI_BASE_URL` is how tests and local runs point it at a stub.
"""

from __future__ import annotations

import threading
from typing import Any

from states.llm_client.ports import FaultKind, LLMCallFailed, LLMRequest, LLMResponse


class GeminiLLM:
    def __init__(self, api_key: str) -> None:
        self._api_key = api_key
        self._client: Any = None
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                from google import genai
                from google.genai import types

                self._client = genai.Client(
                    api_key=self._api_key,
                    http_options=types.HttpOptions(
                        retry_options=types.HttpRetryOptions(attempts=1)
                    ),
                )
            return self._client

    def generate(self, request: LLMRequest, timeout_s: float) -> LLMResponse:
        from google.genai import errors, types

        client = self._get_client()
        contents = [
            types.Content(
                role="user",
                parts=[types.Part.from_text(text=request.user_text)]
                + [
                    types.Part.from_bytes(data=png, mime_type="image/png") for png in request.images
                ],
            )
        ]
        try:
            response = client.models.generate_content(
                model=request.model, contents=contents, config=generation_config(request, timeout_s)
            )
        except errors.ClientError as exc:
            rate_limited = exc.code == 429 or exc.status == "RESOURCE_EXHAUSTED"
            raise LLMCallFailed(
                "rate_limited" if rate_limited else "client", exc.code, str(exc.status or "")
            ) from None
        except errors.APIError as exc:
            raise LLMCallFailed("server", exc.code, str(exc.status or "")) from None
        except Exception as exc:
            kind = transport_fault(exc)
            if kind is None:
                raise
            raise LLMCallFailed(kind, None, type(exc).__name__) from None
        return to_response(response)


def generation_config(request: LLMRequest, timeout_s: float) -> Any:
    """The llmProfile mapped as given (never merged with defaults), plus structured output."""
    from google.genai import types

    profile = request.profile
    thinking = None
    if profile.thinking_config is not None:
        level = profile.thinking_config.thinking_level
        if isinstance(level, str) and level not in types.ThinkingLevel.__members__:
            # the SDK's own enum decides; a value it does not know is a profile error
            raise LLMCallFailed("client", None, "llmProfile.thinkingConfig.thinkingLevel")
        thinking = types.ThinkingConfig(
            include_thoughts=profile.thinking_config.include_thoughts,
            thinking_level=types.ThinkingLevel(level) if isinstance(level, str) else None,
            thinking_budget=level if isinstance(level, int) else None,
        )
    return types.GenerateContentConfig(
        system_instruction=request.system_instruction,
        temperature=profile.temperature,
        top_p=profile.top_p,
        top_k=profile.top_k,
        max_output_tokens=profile.max_output_tokens,
        stop_sequences=profile.stop_sequences,
        candidate_count=1,
        response_mime_type="application/json",
        thinking_config=thinking,
        http_options=types.HttpOptions(
            timeout=max(1, int(timeout_s * 1000)),
            retry_options=types.HttpRetryOptions(attempts=1),
            # The schema goes on the wire as `generationConfig.responseJsonSchema` exactly as
            # `response_json_schema` would put it, but the SDK does not learn of it: given a
            # schema, it json.loads the model's text itself (catching only JSONDecodeError),
            # so deeply nested output raised RecursionError out of the call, and every answer
            # was parsed twice. The worker parses model text once, strictly (engine.jsontext).
            extra_body={"generationConfig": {"responseJsonSchema": request.response_json_schema}},
        ),
    )


def transport_fault(exc: BaseException) -> FaultKind | None:
    """Timeouts and connection failures of whichever httpx flavour the SDK runs on."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "TimeoutException" in names or "TimeoutError" in names:
        return "timeout"
    if names & {"TransportError", "NetworkError", "ConnectError", "ConnectionError"}:
        return "connection"
    return None


def _enum_name(value: Any) -> str | None:
    if value is None:
        return None
    name = getattr(value, "name", None)
    return str(name if name is not None else value)


def to_response(response: Any) -> LLMResponse:
    """Text of candidate 0 (parts concatenated in order, untouched) and its metadata."""
    candidate = response.candidates[0] if response.candidates else None
    text: str | None = None
    if candidate is not None and candidate.content is not None and candidate.content.parts:
        texts = [p.text for p in candidate.content.parts if p.text is not None and not p.thought]
        text = "".join(texts) if texts else None
    if text is None:
        try:
            text = response.text
        except Exception:
            text = None
    usage = response.usage_metadata
    safety = None
    if candidate is not None and candidate.safety_ratings:
        safety = [r.model_dump(mode="json", exclude_none=True) for r in candidate.safety_ratings]
    return LLMResponse(
        text=text,
        finish_reason=_enum_name(candidate.finish_reason) if candidate is not None else None,
        model_version=response.model_version,
        usage_metadata=usage.model_dump(mode="json") if usage is not None else None,
        response_id=response.response_id,
        safety_ratings=safety,
    )
