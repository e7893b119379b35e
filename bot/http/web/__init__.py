"""The dashboard's parts other than its routes: the login session, the locale texts, the
page renderer, and the templates and static assets shipped beside them."""
