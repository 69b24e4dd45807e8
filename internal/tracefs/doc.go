// Package tracefs creates private tracefs instances whose event toggles
// leave live kernel code alone.
//
// # Why record-cmd is turned off
//
// With an instance's options/record-cmd on (the default, copied from the
// top level when the instance is made), enabling or disabling any event in
// it also registers or unregisters the sched_switch and sched_wakeup
// probes that record task names (kernel/trace/trace_events.c,
// __ftrace_event_enable_disable, which tests the instance's own
// trace_flags). Registering a probe int3-patches live code in __schedule.
// Under multi-threaded QEMU TCG a vCPU can keep executing a stale
// translation that holds the int3, and the guest locks up (a soft lockup in
// text_poke_bp / smp_call_function_many_cond). An instance with record-cmd
// off toggles its events without touching the scheduler's probes; trace
// lines then may show "<...>" for a task name, which nothing here reads.
//
// Turning the option off has one effect outside the instance: the kernel
// (trace_event_enable_cmd_record) stops task-name recording for the
// events enabled at that moment in every instance, the top level's too.
// In the rig nothing else is enabled; on a DUT where another tracer runs,
// its trace lines may show "<...>" for task names afterwards.
package tracefs
