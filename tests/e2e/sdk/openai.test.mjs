// The official `openai` SDK against chatd's /v1: code written for OpenAI must work by
// changing only the base URL and the key. Run by tests/e2e/test_sdk.py, which starts
// bench/mock_upstream and chatd in front of it (plus the built-in demo models) and passes:
//   CHATD_BASE_URL        http://127.0.0.1:<port>/v1
//   CHATD_KEY             an API key with the gateway scope
//   CHATD_CHAT_ONLY_KEY   an API key without it
//   CHATD_RPM_KEY         a key limited to 2 requests a minute
//   CHATD_DEMO_ONLY_KEY   a key allowed only the model "demo"
//   CHATD_BUDGET_KEY      a key with a budget of 60 tokens a day
//   MOCK_URL              the mock upstream's root (for /_mock/script and /_mock/stats)
import assert from 'node:assert/strict';
import { test } from 'node:test';

import OpenAI from 'openai';

const {
  CHATD_BASE_URL, CHATD_KEY, CHATD_CHAT_ONLY_KEY, CHATD_RPM_KEY, CHATD_DEMO_ONLY_KEY, CHATD_BUDGET_KEY, MOCK_URL,
} = process.env;
assert.ok(CHATD_BASE_URL && CHATD_KEY && CHATD_CHAT_ONLY_KEY && CHATD_RPM_KEY && CHATD_DEMO_ONLY_KEY &&
          CHATD_BUDGET_KEY && MOCK_URL, 'run me through tests/e2e/test_sdk.py');

// No SDK retries: each scripted upstream failure must surface as it is.
const client = new OpenAI({ baseURL: CHATD_BASE_URL, apiKey: CHATD_KEY, maxRetries: 0, timeout: 20_000 });

async function mock(path, body) {
  const response = await fetch(`${MOCK_URL}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(response.ok, `${path}: ${response.status}`);
  return response.status === 204 ? null : response.json();
}
const script = (steps) => mock('/_mock/script', steps);
const stats = () => mock('/_mock/stats');
const reset = () => mock('/_mock/reset', {});

async function pollFor(what, fn, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`${what} not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const hello = [{ role: 'user', content: 'Say hello' }];

test('chat without streaming (upstream and demo)', async () => {
  await reset();
  const completion = await client.chat.completions.create({ model: 'mock-model', messages: hello });
  assert.equal(completion.object, 'chat.completion');
  assert.match(completion.id, /^chatcmpl-/);
  assert.equal(completion.choices[0].message.role, 'assistant');
  assert.equal(completion.choices[0].message.content, 'tok0 tok1 tok2 tok3 tok4 ');
  assert.equal(completion.choices[0].finish_reason, 'stop');
  assert.deepEqual(completion.usage, { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 });

  const demo = await client.chat.completions.create({ model: 'demo', messages: hello, max_completion_tokens: 6 });
  assert.equal(demo.model, 'demo');
  assert.equal(demo.choices[0].finish_reason, 'length');
  assert.equal(demo.usage.completion_tokens, 6);
  assert.match(demo.choices[0].message.content, /^You said: "Say hello"\./);
});

test('chat with streaming, usage only when asked for', async () => {
  await reset();
  let text = '';
  let finish = null;
  const stream = await client.chat.completions.create({ model: 'mock-model', messages: hello, stream: true });
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    assert.ok(!chunk.usage, 'chatd strips the usage chunk it asked for');
    text += chunk.choices[0]?.delta?.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(text, 'tok0 tok1 tok2 tok3 tok4 ');
  assert.equal(finish, 'stop');

  let usage = null;
  const withUsage = await client.chat.completions.create({
    model: 'demo', messages: hello, stream: true, stream_options: { include_usage: true },
  });
  let demoText = '';
  for await (const chunk of withUsage) {
    demoText += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  assert.match(demoText, /^You said: "Say hello"\./);
  assert.ok(usage && usage.completion_tokens > 0 && usage.total_tokens === usage.prompt_tokens + usage.completion_tokens);

  // The SDK's stream helper assembles the same answer.
  const runner = client.chat.completions.stream({ model: 'mock-model', messages: hello });
  const final = await runner.finalChatCompletion();
  assert.equal(final.choices[0].message.content, 'tok0 tok1 tok2 tok3 tok4 ');
});

test('a tool call round trip', async () => {
  await reset();
  const tools = [{
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather in a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  }];
  await script([{ tool_arguments: '{"city":"Paris"}' }]);
  const first = await client.chat.completions.create({ model: 'mock-model', messages: hello, tools });
  const message = first.choices[0].message;
  assert.equal(first.choices[0].finish_reason, 'tool_calls');
  assert.equal(message.tool_calls.length, 1);
  const call = message.tool_calls[0];
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });

  const answer = await client.chat.completions.create({
    model: 'mock-model',
    tools,
    messages: [...hello, message, { role: 'tool', tool_call_id: call.id, content: 'sunny, 24C' }],
  });
  assert.equal(answer.choices[0].message.content, 'tool said: sunny, 24C');

  // Streamed: the SDK's helper joins the tool call deltas.
  await script([{ tool_arguments: '{"city":"Oslo"}' }]);
  const runner = client.chat.completions.stream({ model: 'mock-model', messages: hello, tools });
  const streamed = await runner.finalChatCompletion();
  const streamedCall = streamed.choices[0].message.tool_calls[0];
  assert.equal(streamedCall.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(streamedCall.function.arguments), { city: 'Oslo' });
});

test('JSON mode', async () => {
  await reset();
  const upstream = await client.chat.completions.create({
    model: 'mock-model', messages: hello, response_format: { type: 'json_object' },
  });
  assert.deepEqual(JSON.parse(upstream.choices[0].message.content).ok, true);
  const sent = await mock('/_mock/last_request');
  assert.deepEqual(sent.response_format, { type: 'json_object' });

  const demo = await client.chat.completions.create({
    model: 'demo',
    messages: hello,
    response_format: {
      type: 'json_schema',
      json_schema: { name: 'answer', schema: { type: 'object', properties: { answer: { type: 'string' } } } },
    },
  });
  assert.match(JSON.parse(demo.choices[0].message.content).answer, /Say hello/);
});

test('embeddings, float and base64', async () => {
  const asFloats = await client.embeddings.create({
    model: 'demo-embedding', input: ['hello world', 'goodbye'], encoding_format: 'float', dimensions: 64,
  });
  assert.equal(asFloats.object, 'list');
  assert.equal(asFloats.data.length, 2);
  const vector = asFloats.data[0].embedding;
  assert.equal(vector.length, 64);
  assert.ok(Math.abs(vector.reduce((sum, x) => sum + x * x, 0) - 1) < 1e-4, 'normalised');
  assert.ok(asFloats.usage.prompt_tokens > 0);

  // Without encoding_format the SDK asks for base64 and decodes it itself.
  const decoded = await client.embeddings.create({ model: 'demo-embedding', input: 'hello world', dimensions: 64 });
  assert.equal(decoded.data[0].embedding.length, 64);
  decoded.data[0].embedding.forEach((x, i) => assert.ok(Math.abs(x - vector[i]) < 1e-7));
  const raw = await client.embeddings.create({
    model: 'demo-embedding', input: 'hello world', dimensions: 64, encoding_format: 'base64',
  });
  assert.equal(typeof raw.data[0].embedding, 'string');
  assert.equal(Buffer.from(raw.data[0].embedding, 'base64').length, 64 * 4);

  const upstream = await client.embeddings.create({ model: 'mock-embedding', input: 'x', dimensions: 8 });
  assert.equal(upstream.data[0].embedding.length, 8);
});

test('models list and retrieve', async () => {
  const ids = [];
  for await (const model of client.models.list()) {
    assert.equal(model.object, 'model');
    ids.push(model.id);
  }
  for (const id of ['demo', 'demo-embedding', 'mock-model', 'mock-embedding']) assert.ok(ids.includes(id), id);
  const demo = await client.models.retrieve('demo');
  assert.equal(demo.id, 'demo');
  await assert.rejects(client.models.retrieve('gpt-9'), (error) => {
    assert.ok(error instanceof OpenAI.NotFoundError);
    assert.equal(error.code, 'model_not_found');
    return true;
  });
});

test('each error class is the SDK\'s own exception', async () => {
  await reset();
  const expect = async (promise, Type, status, check = () => {}) => {
    await assert.rejects(promise, (error) => {
      assert.ok(error instanceof Type, `${error.constructor.name}: ${error.message}`);
      assert.equal(error.status, status);
      check(error);
      return true;
    });
  };
  const wrongKey = new OpenAI({ baseURL: CHATD_BASE_URL, apiKey: 'sk-chatd-wrong', maxRetries: 0 });
  await expect(wrongKey.chat.completions.create({ model: 'demo', messages: hello }), OpenAI.AuthenticationError, 401,
    (error) => assert.equal(error.code, 'invalid_api_key'));
  const chatOnly = new OpenAI({ baseURL: CHATD_BASE_URL, apiKey: CHATD_CHAT_ONLY_KEY, maxRetries: 0 });
  await expect(chatOnly.chat.completions.create({ model: 'demo', messages: hello }), OpenAI.PermissionDeniedError, 403);
  await expect(client.chat.completions.create({ model: 'gpt-9', messages: hello }), OpenAI.NotFoundError, 404,
    (error) => assert.equal(error.code, 'model_not_found'));
  await expect(client.chat.completions.create({ model: 'demo', messages: hello, temperature: 5 }),
    OpenAI.BadRequestError, 400, (error) => {
      assert.equal(error.param, 'temperature');
      assert.equal(error.type, 'invalid_request_error');
    });
  await expect(client.chat.completions.create({ model: 'demo', messages: [] }), OpenAI.BadRequestError, 400,
    (error) => assert.equal(error.param, 'messages'));
  await script([{ status: 429, retry_after: 1 }]);
  await expect(client.chat.completions.create({ model: 'mock-model', messages: hello }), OpenAI.RateLimitError, 429,
    (error) => assert.equal(error.code, 'rate_limit_exceeded'));
  await script([{ status: 500 }]);
  await expect(client.chat.completions.create({ model: 'mock-model', messages: hello, stream: true }),
    OpenAI.InternalServerError, 502, (error) => assert.match(error.message, /mock upstream failure 500/));
  await expect(client.chat.completions.create({ model: 'demo-error', messages: hello }), OpenAI.InternalServerError, 502);

  // An upstream failure after the stream began: the SDK raises it from the iteration.
  await script([{ error_after: 2 }]);
  const stream = await client.chat.completions.create({ model: 'mock-model', messages: hello, stream: true });
  let received = 0;
  await assert.rejects(async () => {
    for await (const chunk of stream) received += chunk.choices[0]?.delta?.content ? 1 : 0;
  }, (error) => {
    assert.ok(error instanceof OpenAI.APIError);
    assert.match(error.message, /mock upstream failed mid-stream/);
    return true;
  });
  assert.equal(received, 2);
});

test('abort in the middle of a stream closes the upstream call within 1 s', async () => {
  await reset();
  await script([{ chunks: 400, interval_ms: 50 }]);
  const controller = new AbortController();
  const stream = await client.chat.completions.create(
    { model: 'mock-model', messages: hello, stream: true }, { signal: controller.signal });
  let chunks = 0;
  let aborted;
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.content) chunks += 1;
    if (chunks === 3) {
      aborted = Date.now();
      controller.abort();
    }
  }
  assert.equal(chunks, 3);
  const seen = await pollFor('the upstream seeing its client leave', async () => (await stats()).abandoned === 1, 1000);
  assert.ok(seen);
  assert.ok(Date.now() - aborted < 1000);
  assert.equal((await stats()).completed_streams, 0);
});

// Per-key limits: requests per minute, allowed models, budgets (gateway::KeyLimiter).
const withKey = (apiKey) => new OpenAI({ baseURL: CHATD_BASE_URL, apiKey, maxRetries: 0, timeout: 20_000 });

test('a key over its RPM limit gets RateLimitError', async () => {
  const limited = withKey(CHATD_RPM_KEY);
  for (let i = 0; i < 2; i += 1) {
    await limited.chat.completions.create({ model: 'demo', messages: hello, max_completion_tokens: 2 });
  }
  await assert.rejects(limited.chat.completions.create({ model: 'demo', messages: hello, max_completion_tokens: 2 }),
    (error) => {
      assert.ok(error instanceof OpenAI.RateLimitError, `${error.constructor.name}: ${error.message}`);
      assert.equal(error.status, 429);
      assert.equal(error.code, 'rate_limit_exceeded');
      assert.ok(Number(error.headers.get('retry-after')) >= 1);
      return true;
    });
});

test('a model not allowed for the key gets PermissionDeniedError', async () => {
  const demoOnly = withKey(CHATD_DEMO_ONLY_KEY);
  const allowed = await demoOnly.chat.completions.create({ model: 'demo', messages: hello, max_completion_tokens: 2 });
  assert.equal(allowed.model, 'demo');
  await assert.rejects(demoOnly.chat.completions.create({ model: 'mock-model', messages: hello }), (error) => {
    assert.ok(error instanceof OpenAI.PermissionDeniedError, `${error.constructor.name}: ${error.message}`);
    assert.equal(error.status, 403);
    assert.match(error.message, /mock-model/);
    return true;
  });
});

test('a key whose budget is exhausted gets RateLimitError', async () => {
  const budgeted = withKey(CHATD_BUDGET_KEY);
  let served = 0;
  let refusal;
  for (let i = 0; i < 30 && !refusal; i += 1) {
    try {
      await budgeted.chat.completions.create({ model: 'demo', messages: hello, max_completion_tokens: 4 });
      served += 1;
    } catch (error) {
      refusal = error;
    }
  }
  assert.ok(served >= 2, `served ${served} before the budget ran out`);
  assert.ok(refusal instanceof OpenAI.RateLimitError, `${refusal?.constructor.name}: ${refusal?.message}`);
  assert.equal(refusal.status, 429);
  assert.match(refusal.message, /budget/);
});
