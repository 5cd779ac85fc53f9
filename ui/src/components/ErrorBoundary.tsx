// A screen that throws shows what went wrong instead of a blank window.
import { Component, type ReactNode } from "react";

type State = { error: Error | null };

export class ErrorBoundary extends Component<{ children: ReactNode; resetKey?: unknown }, State> {
  state: State = { error: null };

  static getDerivedStateFromError(error: Error): State {
    return { error };
  }

  componentDidUpdate(prev: { resetKey?: unknown }) {
    if (prev.resetKey !== this.props.resetKey && this.state.error) this.setState({ error: null });
  }

  render() {
    if (!this.state.error) return this.props.children;
    return (
      <div className="card" role="alert" data-testid="screen-error">
        <h2>This screen failed</h2>
        <p className="error">{this.state.error.message}</p>
        <pre className="raw muted">{this.state.error.stack}</pre>
      </div>
    );
  }
}
