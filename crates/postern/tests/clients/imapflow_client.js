// imapflow (npm) against Postern over implicit TLS (port 993 style) or STARTTLS (port
// 143), trusting the server's self-signed certificate: the library behind many node mail
// apps. Run by tests/imap_clients.rs with NODE_PATH pointing at the node_modules that
// holds imapflow.
//
// Usage: node imapflow_client.js tls|starttls PORT CERT USER PASSWORD
//
// Asserts as it goes; prints `step NAME` before each step and `OK` as its last line.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const { inspect } = require('node:util');
const { ImapFlow } = require('imapflow');

const [mode, port, certPath, user, pass] = process.argv.slice(2);
assert.ok(mode === 'tls' || mode === 'starttls', `mode ${mode}`);
const ca = fs.readFileSync(certPath);

function step(name) {
    console.log('step ' + name);
}

function client() {
    return new ImapFlow({
        host: '127.0.0.1',
        port: Number(port),
        secure: mode === 'tls',
        // With secure false: STARTTLS, required (no fallback to plaintext).
        doSTARTTLS: mode === 'starttls' ? true : undefined,
        // Full verification against the certificate's 127.0.0.1 subject name.
        tls: { ca, rejectUnauthorized: true },
        auth: { user, pass },
        logger: false,
        // Keep IDLE as IDLE: no periodic NOOP fallback in the window we test.
        maxIdleTime: 60000,
    });
}

function msg(subject, body, id) {
    return Buffer.from(
        'From: Dave <dave@example.org>\r\n' +
            'To: alice@example.com\r\n' +
            `Subject: ${subject}\r\n` +
            `Message-ID: <${id}@example.org>\r\n` +
            'Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n' +
            'MIME-Version: 1.0\r\n' +
            'Content-Type: text/plain; charset=utf-8\r\n' +
            'Content-Transfer-Encoding: 8bit\r\n' +
            '\r\n' +
            `${body}\r\n`,
        'utf8'
    );
}

function withTimeout(promise, ms, what) {
    let t;
    const timer = new Promise((_, reject) => {
        t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    });
    return Promise.race([promise, timer]).finally(() => clearTimeout(t));
}

async function main() {
    const c = client();
    c.on('error', (e) => {
        console.error('client error', e);
    });
    step('connect');
    await c.connect();
    // Set by imapflow once TLS is up (at connect, or after the STARTTLS upgrade).
    assert.equal(c.secureConnection, true);
    assert.ok(c.capabilities.has('IDLE'), [...c.capabilities.keys()].join(' '));
    assert.ok(c.capabilities.has('MOVE'));
    assert.ok(c.capabilities.has('UIDPLUS'));

    step('list');
    await c.mailboxCreate('Archive');
    const list = await c.list();
    const paths = list.map((m) => m.path);
    assert.ok(paths.includes('INBOX'), paths.join(','));
    assert.ok(paths.includes('Archive'), paths.join(','));
    const inbox = list.find((m) => m.path === 'INBOX');
    assert.equal(inbox.specialUse, '\\Inbox');

    step('append');
    const sent = [msg('Hello from imapflow', 'Grüße 1', 'f1'), msg('Second', 'needle here', 'f2'), msg('Third', 'three', 'f3')];
    const appended = [];
    for (const [i, raw] of sent.entries()) {
        const r = await c.append('INBOX', raw, i === 0 ? ['\\Seen'] : [], new Date('2026-11-20T12:00:00Z'));
        assert.ok(r && r.uid, inspect(r));
        appended.push(r.uid);
    }

    step('mailboxOpen');
    const box = await c.mailboxOpen('INBOX');
    assert.equal(box.path, 'INBOX');
    assert.equal(box.exists, 3);
    assert.ok(box.uidValidity > 0n, String(box.uidValidity));

    step('fetch');
    const fetched = [];
    for await (const m of c.fetch('1:*', { uid: true, flags: true, envelope: true, source: true, bodyStructure: true, size: true, internalDate: true })) {
        fetched.push(m);
    }
    assert.equal(fetched.length, 3);
    fetched.forEach((m, i) => {
        assert.equal(m.uid, appended[i]);
        assert.ok(m.source.equals(sent[i]), `source ${i}: ${m.source.toString()}`);
        assert.equal(m.size, sent[i].length);
    });
    assert.equal(fetched[0].envelope.subject, 'Hello from imapflow');
    assert.equal(fetched[0].envelope.messageId, '<f1@example.org>');
    assert.deepEqual(fetched[0].envelope.from, [{ name: 'Dave', address: 'dave@example.org' }]);
    assert.equal(fetched[0].envelope.date.toISOString(), '2026-11-24T10:00:00.000Z');
    assert.equal(fetched[0].internalDate.toISOString(), '2026-11-20T12:00:00.000Z');
    assert.ok(fetched[0].flags.has('\\Seen'));
    assert.ok(!fetched[1].flags.has('\\Seen'));
    assert.equal(fetched[1].bodyStructure.type, 'text/plain');
    assert.equal(fetched[1].bodyStructure.parameters.charset, 'utf-8');
    const one = await c.fetchOne('2', { bodyParts: ['1'], headers: ['subject'] });
    assert.equal(one.bodyParts.get('1').toString(), 'needle here\r\n');
    assert.equal(one.headers.toString(), 'Subject: Second\r\n\r\n');
    const dl = await c.download('3', false, { uid: false });
    const chunks = [];
    for await (const chunk of dl.content) chunks.push(chunk);
    assert.ok(Buffer.concat(chunks).equals(sent[2]));

    step('search');
    assert.deepEqual(await c.search({ subject: 'Second' }), [2]);
    assert.deepEqual(await c.search({ seen: false }), [2, 3]);
    assert.deepEqual(await c.search({ body: 'needle' }, { uid: true }), [appended[1]]);
    assert.deepEqual(await c.search({ or: [{ subject: 'Third' }, { subject: 'Second' }] }), [2, 3]);
    assert.deepEqual(await c.search({ from: 'dave@example.org', since: new Date('2026-01-01') }), [1, 2, 3]);

    step('messageFlagsAdd');
    assert.equal(await c.messageFlagsAdd('2:3', ['\\Flagged', '$Work']), true);
    assert.deepEqual(await c.search({ flagged: true }), [2, 3]);
    assert.deepEqual(await c.search({ keyword: '$Work' }), [2, 3]);
    assert.equal(await c.messageFlagsRemove('3', ['\\Flagged']), true);
    assert.equal(await c.messageFlagsSet({ uid: appended[0] }, ['\\Answered'], { uid: true }), true);
    const flags = [];
    for await (const m of c.fetch('1:*', { flags: true })) flags.push([...m.flags].sort().join(' '));
    assert.deepEqual(flags, ['\\Answered', '$Work \\Flagged', '$Work']);

    step('messageMove');
    const moved = await c.messageMove('2', 'Archive');
    assert.ok(moved && moved.uidMap && moved.uidMap.size === 1, inspect(moved));
    assert.equal(c.mailbox.exists, 2);
    const copied = await c.messageCopy('1', 'Archive');
    assert.ok(copied && copied.uidMap && copied.uidMap.size === 1, inspect(copied));
    const st = await c.status('Archive', { messages: true, unseen: true });
    assert.equal(st.messages, 2);

    step('messageDelete');
    assert.equal(await c.messageDelete('2'), true);
    assert.equal(c.mailbox.exists, 1);

    step('idle');
    // Another session appends while this one idles: imapflow must emit `exists`.
    const exists = new Promise((resolve) => {
        c.on('exists', (data) => resolve(data));
    });
    const idling = c.idle();
    await new Promise((r) => setTimeout(r, 300));
    const other = client();
    await other.connect();
    await other.append('INBOX', msg('During IDLE', 'wake up', 'f9'));
    await other.logout();
    const ev = await withTimeout(exists, 10000, 'exists event during IDLE');
    assert.equal(ev.path, 'INBOX');
    assert.equal(ev.count, 2);
    assert.equal(ev.prevCount, 1);
    // Any command ends IDLE (imapflow sends DONE first).
    assert.deepEqual(await c.search({ subject: 'During IDLE' }), [2]);
    await idling;

    step('logout');
    await c.mailboxClose();
    await c.logout();
    console.log('OK');
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
