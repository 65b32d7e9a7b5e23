// The official `@anthropic-ai/sdk` against chatd's /v1/messages: code written for
// Anthropic's Messages API must work by changing only the base URL and the key, whatever
// provider the model routes to. Run by tests/e2e/test_sdk.py, which starts
// bench/mock_upstream (an OpenAI-compatible upstream) and chatd in front of it (plus the
// built-in demo models) and passes:
//   CHATD_ROOT_URL        http://127.0.0.1:<port> (the SDK appends /v1/messages)
//   CHATD_KEY             an API key with the gateway scope (sent as x-api-key)
//   CHATD_CHAT_ONLY_KEY   an API key without it
//   MOCK_URL              the mock upstream's root (for /_mock/script)
import assert from 'node:assert/strict';
import { test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';

const { CHATD_ROOT_URL, CHATD_KEY, CHATD_CHAT_ONLY_KEY, MOCK_URL } = process.env;
assert.ok(CHATD_ROOT_URL && CHATD_KEY && CHATD_CHAT_ONLY_KEY && MOCK_URL, 'run me through tests/e2e/test_sdk.py');

// No SDK retries: each scripted upstream failure must surface as it is.
const client = new Anthropic({ baseURL: CHATD_ROOT_URL, apiKey: CHATD_KEY, maxRetries: 0, timeout: 20_000 });

async function mock(path, body) {
  const response = await fetch(`${MOCK_URL}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.ok(response.ok, `${path}: ${response.status}`);
}
const script = (steps) => mock('/_mock/script', steps);
const reset = () => mock('/_mock/reset', {});

const hello = [{ role: 'user', content: 'Say hello' }];
const weather = {
  name: 'get_weather',
  description: 'The weather in a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

test('a message without streaming (upstream and demo)', async () => {
  await reset();
  const message = await client.messages.create({ model: 'mock-model', max_tokens: 64, messages: hello });
  assert.equal(message.type, 'message');
  assert.match(message.id, /^msg_/);
  assert.equal(message.role, 'assistant');
  assert.deepEqual(message.content, [{ type: 'text', text: 'tok0 tok1 tok2 tok3 tok4 ' }]);
  assert.equal(message.stop_reason, 'end_turn');
  assert.equal(message.usage.input_tokens, 12);
  assert.equal(message.usage.output_tokens, 5);

  const demo = await client.messages.create({ model: 'demo', max_tokens: 6, system: 'Be brief.', messages: hello });
  assert.equal(demo.model, 'demo');
  assert.equal(demo.stop_reason, 'max_tokens');
  assert.equal(demo.usage.output_tokens, 6);
  assert.match(demo.content[0].text, /^You said: "Say hello"\./);
});

test('messages.stream: text accumulates, finalMessage has the usage', async () => {
  await reset();
  const stream = client.messages.stream({ model: 'mock-model', max_tokens: 64, messages: hello });
  let text = '';
  stream.on('text', (delta) => {
    text += delta;
  });
  const message = await stream.finalMessage();
  assert.equal(text, 'tok0 tok1 tok2 tok3 tok4 ');
  assert.deepEqual(message.content, [{ type: 'text', text }]);
  assert.equal(message.stop_reason, 'end_turn');
  assert.equal(message.usage.input_tokens, 12);
  assert.equal(message.usage.output_tokens, 5);
});

test('stream: true yields Anthropic events in order (demo model, offline)', async () => {
  const stream = await client.messages.create({ model: 'demo', max_tokens: 5, messages: hello, stream: true });
  const types = [];
  let text = '';
  for await (const event of stream) {
    types.push(event.type);
    if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') text += event.delta.text;
  }
  assert.equal(types[0], 'message_start');
  assert.equal(types.at(-1), 'message_stop');
  assert.equal(types.at(-2), 'message_delta');
  assert.ok(types.includes('content_block_start') && types.includes('content_block_stop'), types.join());
  assert.match(text, /^You said/);
});

test('a tool_use round trip', async () => {
  await reset();
  await script([{ tool_arguments: '{"city":"Paris"}' }]);
  const first = await client.messages
    .stream({ model: 'mock-model', max_tokens: 64, messages: hello, tools: [weather] })
    .finalMessage();
  assert.equal(first.stop_reason, 'tool_use');
  const use = first.content.find((block) => block.type === 'tool_use');
  assert.ok(use, JSON.stringify(first.content));
  assert.equal(use.name, 'get_weather');
  assert.deepEqual(use.input, { city: 'Paris' });

  const second = await client.messages.create({
    model: 'mock-model',
    max_tokens: 64,
    tools: [weather],
    messages: [
      ...hello,
      { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny, 24C' }] },
    ],
  });
  assert.equal(second.content[0].text, 'tool said: sunny, 24C');
  assert.equal(second.stop_reason, 'end_turn');
});

test("errors are the SDK's exception classes", async () => {
  const stranger = new Anthropic({ baseURL: CHATD_ROOT_URL, apiKey: 'sk-not-a-key', maxRetries: 0 });
  await assert.rejects(stranger.messages.create({ model: 'demo', max_tokens: 8, messages: hello }), (error) => {
    assert.ok(error instanceof Anthropic.AuthenticationError, String(error));
    assert.equal(error.status, 401);
    assert.equal(error.error.error.type, 'authentication_error');
    return true;
  });
  const chatOnly = new Anthropic({ baseURL: CHATD_ROOT_URL, apiKey: CHATD_CHAT_ONLY_KEY, maxRetries: 0 });
  await assert.rejects(chatOnly.messages.create({ model: 'demo', max_tokens: 8, messages: hello }), (error) => {
    assert.ok(error instanceof Anthropic.PermissionDeniedError, String(error));
    return true;
  });
  await assert.rejects(client.messages.create({ model: 'no-such-model', max_tokens: 8, messages: hello }), (error) => {
    assert.ok(error instanceof Anthropic.NotFoundError, String(error));
    assert.equal(error.error.error.type, 'not_found_error');
    return true;
  });
  await assert.rejects(client.messages.create({ model: 'demo', max_tokens: 0, messages: hello }), (error) => {
    assert.ok(error instanceof Anthropic.BadRequestError, String(error));
    assert.equal(error.error.error.type, 'invalid_request_error');
    assert.match(error.message, /max_tokens/);
    return true;
  });
  await reset();
  await script([{ status: 429, retry_after: 1 }]);
  await assert.rejects(client.messages.create({ model: 'mock-model', max_tokens: 8, messages: hello }), (error) => {
    assert.ok(error instanceof Anthropic.RateLimitError, String(error));
    return true;
  });
});

test('an upstream failure mid-stream rejects the stream', async () => {
  await reset();
  await script([{ error_after: 2 }]);
  const stream = client.messages.stream({ model: 'mock-model', max_tokens: 64, messages: hello });
  await assert.rejects(stream.finalMessage(), (error) => {
    assert.match(String(error.message), /mock upstream failed mid-stream/);
    return true;
  });
});
