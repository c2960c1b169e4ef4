// Package wailssync carries statesync over Wails v2 (the Go counterpart of
// Tauri): Wails events carry invalidations from the Go backend to the
// frontend, and a bound method serves snapshots.
//
// # Backend
//
// A [Bridge] follows a [statesync.Source]. After each committed write it
// emits the invalidation, as an [InvalidationDTO] (revision as a canonical
// string), on the event "statesync:invalidation" through a function shaped
// like Wails' runtime.EventsEmit. Its methods [Bridge.GetSnapshot],
// [Bridge.Put] and [Bridge.Patch] serve the frontend; bind them through
// [Bridge.API] (options.App.Bind: []any{bridge.API()}), which exposes only
// those three.
//
// This package does not import Wails, so that its tests run without a
// desktop toolchain; runtime.EventsEmit already has the shape [EmitFunc], so
// the wiring is one line in the app's OnStartup:
//
//	bridge.Startup(ctx) // ctx: the Wails context given to OnStartup
//
// with the Bridge made by
//
//	wailssync.NewBridge(src, runtime.EventsEmit, nil)
//
// The Bridge emits nothing before it knows the Wails context (from
// Startup or [Options.Context]), because runtime.EventsEmit exits the
// process when called with any other context.
//
// # Frontend
//
// frontend/statesync-wails.js is a dependency-free ES module:
// createWailsTransport({EventsOn, EventsOff, call}) gives subscriber(topic)
// and provider(topic) objects compatible with @statesync/core, over Wails
// events and the bound GetSnapshot method.
//
// # Generic IPC contract
//
// [NewSubscriber] and [NewProvider] implement [statesync.Subscriber] and
// [statesync.Provider] over any event/command IPC ([Listener], [Invoker]:
// Wails, Tauri-like bridges, WebSocket RPC), so that a Go
// [statesync.Consumer] can follow it: payloads are passed to the engine
// unchanged, which validates them.
package wailssync
