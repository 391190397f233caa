import { describe, expect, test } from 'vitest';
import { spamAssassin, spamAssassinRecords, sotu, mobyDick, loadBuiltin } from '../../lib/data/builtin.js';
import { emailBody, htmlToText, parseHeaders, decodeQuotedPrintable } from '../../lib/data/email.js';
import { buildLabelMap } from '../../lib/data/labels.js';

describe('email bodies', () => {
  test('headers removed, multipart + quoted-printable + base64 decoded, attachments dropped', () => {
    const raw = [
      'From: a@b.c',
      'Subject: test',
      'Content-Type: multipart/mixed;',
      ' boundary="XYZ"',
      '',
      'preamble',
      '--XYZ',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      'caf=C3=A9 soft=',
      'break',
      '--XYZ',
      'Content-Type: application/octet-stream',
      'Content-Disposition: attachment',
      'Content-Transfer-Encoding: base64',
      '',
      'AAAA',
      '--XYZ--',
    ].join('\n');
    expect(emailBody(raw)).toBe('café softbreak');
    expect(emailBody(raw, { mode: 'raw' }).startsWith('preamble')).toBe(true);
    expect(parseHeaders('Content-Type: text/plain;\n charset=utf-8').get('content-type')).toBe('text/plain; charset=utf-8');
    expect(new TextDecoder().decode(decodeQuotedPrintable('a=3Db'))).toBe('a=b');
    const html = 'Content-Type: text/html\nContent-Transfer-Encoding: base64\n\n' + Buffer.from('<p>Hi&nbsp;<b>there</b></p><p>x &amp; y</p>').toString('base64');
    expect(emailBody(html)).toBe('Hi there\n\nx & y');
    expect(htmlToText('<style>a{}</style>A<br>B')).toBe('A\nB');
    // a bounced message pasted as the body: its headers go too
    const bounced = 'Subject: fwd\n\nReturn-Path: <x@y.z>\nReceived: from a\n  by b\nSubject: inner\n\nReal content';
    expect(emailBody(bounced)).toBe('Real content');
  });
});

describe('SpamAssassin corpus', () => {
  const all = spamAssassinRecords();
  test('6,046 e-mails, 1,896 spam, as REFERENCE.md says', () => {
    expect(all).toHaveLength(6046);
    expect(all.filter((r) => r.label === 'spam')).toHaveLength(1896);
    const groups: Record<string, number> = {};
    for (const r of all) groups[r.group] = (groups[r.group] ?? 0) + 1;
    expect(groups).toEqual({ 'easy-ham-1': 2500, 'easy-ham-2': 1400, 'hard-ham-1': 250, 'spam-1': 500, 'spam-2': 1396 });
  });

  test("no message's own header lines left in its body; no empty bodies", () => {
    const hdr = /^(Return-Path|Received|Delivered-To|Message-I[Dd]|MIME-Version|Content-Type|Content-Transfer-Encoding|X-Spam-[\w-]+|From [^\s]+ +\w{3} \w{3})[: ]/;
    for (const r of all) {
      expect(r.text.trim().length, `${r.group}/${r.id}`).toBeGreaterThan(0);
      expect(hdr.test(r.text), `${r.group}/${r.id} starts with a header: ${r.text.slice(0, 80)}`).toBe(false);
    }
    // Received: lines only survive inside forwarded messages quoted in a body, which are rare.
    expect(all.filter((r) => /^Received: /m.test(r.text)).length).toBeLessThan(15);
  });

  test('fixed split: 4,836 / 1,210, deterministic, disjoint', () => {
    const a = spamAssassin();
    const b = spamAssassin();
    expect(a.train).toHaveLength(4836);
    expect(a.eval).toHaveLength(1210);
    expect(a.eval.map((r) => `${r.group}/${r.id}`)).toEqual(b.eval.map((r) => `${r.group}/${r.id}`));
    const trainIds = new Set(a.train.map((r) => `${r.group}/${r.id}`));
    expect(a.eval.some((r) => trainIds.has(`${r.group}/${r.id}`))).toBe(false);
    const spamEval = a.eval.filter((r) => r.label === 'spam').length;
    expect(spamEval / a.eval.length).toBeGreaterThan(0.26);
    expect(spamEval / a.eval.length).toBeLessThan(0.37);
    expect(buildLabelMap(a.train).names).toEqual(['ham', 'spam']);
  });
});

describe('text corpora', () => {
  test('sotu and moby-dick', () => {
    const s = sotu();
    expect(s.all.length).toBeGreaterThan(200);
    expect(s.train.length + s.eval.length).toBe(s.all.length);
    expect(s.all[0]!.text.length).toBeGreaterThan(1000);
    const m = mobyDick();
    expect(m.all).toHaveLength(139);
    expect(m.all.map((c) => c.text).join('\n')).toContain('Call me Ishmael');
    expect(loadBuiltin('builtin:moby-dick').format).toBe('text');
    expect(() => loadBuiltin('builtin:nope')).toThrow(/builtin:spam-assassin/);
  });
});
