// Shared by the Function and the fetch program: what of a URL may be shown. Signed URLs
// carry their credentials in the query string, and `user:password@` is a credential, so a
// URL is shown as scheme, host and path only, in status, events, messages and logs alike.

/** Anything shaped like `scheme://…` up to whitespace or a quote. */
const URLISH = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s"'<>`]*)/gi;

/** `url` (or every URL in a message) without its userinfo, query string and fragment. */
export function redactUrls(text: string): string {
  return text.replace(URLISH, (_match, scheme: string, rest: string) => {
    const cut = rest.search(/[?#]/);
    let kept = cut < 0 ? rest : rest.slice(0, cut);
    // Userinfo ends at the last '@' of the authority (a password may hold an '@' itself);
    // an '@' after the first '/' belongs to the path.
    const slash = kept.indexOf('/');
    const at = (slash < 0 ? kept : kept.slice(0, slash)).lastIndexOf('@');
    if (at >= 0) kept = kept.slice(at + 1);
    return `${scheme}${kept}`;
  });
}
