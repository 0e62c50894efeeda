/**
 * Mailbox providers whose addresses belong to the public, not to one company: no organization may
 * claim them (a verified domain is exclusive, and auto-join would let anyone with a free address in).
 */
// prettier-ignore
export const PUBLIC_MAIL_DOMAINS: ReadonlySet<string> = new Set([
  'gmail.com', 'googlemail.com', 'outlook.com', 'hotmail.com', 'hotmail.co.uk', 'hotmail.fr', 'live.com',
  'live.co.uk', 'msn.com', 'passport.com', 'yahoo.com', 'yahoo.co.uk', 'yahoo.co.jp', 'yahoo.fr', 'yahoo.de',
  'ymail.com', 'rocketmail.com', 'aol.com', 'icloud.com', 'me.com', 'mac.com', 'proton.me', 'protonmail.com',
  'pm.me', 'tutanota.com', 'tuta.io', 'gmx.com', 'gmx.net', 'gmx.de', 'web.de', 'mail.com', 'email.com', 'zoho.com',
  'zohomail.com', 'yandex.com', 'yandex.ru', 'mail.ru', 'inbox.ru', 'list.ru', 'bk.ru', 'qq.com', '163.com',
  '126.com', 'sina.com', 'naver.com', 'hanmail.net', 'daum.net', 'fastmail.com', 'hey.com', 'duck.com',
  'hushmail.com', 'mailbox.org', 'posteo.de', 'laposte.net', 'orange.fr', 'free.fr', 'sfr.fr', 't-online.de',
  'libero.it', 'virgilio.it', 'btinternet.com', 'sky.com', 'comcast.net', 'att.net', 'verizon.net', 'sbcglobal.net',
  'cox.net', 'rediffmail.com', 'seznam.cz', 'wp.pl', 'o2.pl', 'interia.pl', 'bol.com.br', 'uol.com.br',
  'terra.com.br',
]);
