/** Placeholder: the admin page lands in the next commit. */
export const ADMIN_PAGE_HTML = '<!doctype html><title>nsq broker admin</title><p>admin page pending</p>';
