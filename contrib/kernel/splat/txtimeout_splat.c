// SPDX-License-Identifier: GPL-2.0
/*
 * txtimeout_splat: provokes, on purpose, the debug-kernel reports that
 * lkdtm has no crash type for, so that txtimeout's kmsg fixtures can be
 * captured from a real kernel: a lockdep circular-dependency report (an
 * AB-BA mutex order in one task: lockdep warns, nothing deadlocks), a
 * kmemleak leak (kmalloc'ed blocks whose pointers are dropped), and an
 * "unregister_netdevice: waiting for ... to become free" wait with its
 * ref_tracker report (a tracked netdev reference held for 15 s while the
 * device is unregistered, then put).
 *
 * It does nothing when loaded. Write a report's name to its parameter:
 *
 *   echo lockdep > /sys/module/txtimeout_splat/parameters/trigger
 *   echo leak    > /sys/module/txtimeout_splat/parameters/trigger
 *   echo netdev  > /sys/module/txtimeout_splat/parameters/trigger
 *
 * Build it against a configured and built kernel tree:
 *
 *   make -C /path/to/linux M=$PWD modules
 *
 * For test kernels only: each trigger leaves the kernel tainted or, for
 * lockdep, with lock debugging off for the rest of the boot.
 */
#include <linux/delay.h>
#include <linux/etherdevice.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/netdevice.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/workqueue.h>

static DEFINE_MUTEX(splat_lock_a);
static DEFINE_MUTEX(splat_lock_b);

static noinline void splat_lockdep(void)
{
	mutex_lock(&splat_lock_a);
	mutex_lock(&splat_lock_b);
	mutex_unlock(&splat_lock_b);
	mutex_unlock(&splat_lock_a);

	mutex_lock(&splat_lock_b);
	mutex_lock(&splat_lock_a); /* B then A: circular with A then B */
	mutex_unlock(&splat_lock_a);
	mutex_unlock(&splat_lock_b);
}

static noinline int splat_leak_thread(void *unused)
{
	int i;

	for (i = 0; i < 4; i++) {
		char *p = kmalloc(96, GFP_KERNEL);

		if (p)
			memset(p, 'L', 96);
		OPTIMIZER_HIDE_VAR(p);
	}
	return 0;
}

static int splat_leak(void)
{
	struct task_struct *t;

	/* In a thread of its own, so that no stale copy of a pointer stays
	 * on the writer's stack for kmemleak to find. */
	t = kthread_run(splat_leak_thread, NULL, "txtimeout_leak");
	return PTR_ERR_OR_ZERO(t);
}

static netdev_tx_t splat_xmit(struct sk_buff *skb, struct net_device *dev)
{
	dev_kfree_skb(skb);
	return NETDEV_TX_OK;
}

static const struct net_device_ops splat_netdev_ops = {
	.ndo_start_xmit = splat_xmit,
};

static struct net_device *splat_dev;
static netdevice_tracker splat_tracker;

static void splat_put_fn(struct work_struct *w)
{
	netdev_put(splat_dev, &splat_tracker);
}
static DECLARE_DELAYED_WORK(splat_put_work, splat_put_fn);

static int splat_netdev(void)
{
	struct net_device *dev;
	int err;

	dev = alloc_netdev(0, "splat%d", NET_NAME_ENUM, ether_setup);
	if (!dev)
		return -ENOMEM;
	dev->netdev_ops = &splat_netdev_ops;
	eth_hw_addr_random(dev);
	err = register_netdev(dev);
	if (err) {
		free_netdev(dev);
		return err;
	}
	splat_dev = dev;
	netdev_hold(dev, &splat_tracker, GFP_KERNEL);
	/* The kernel warns after 10 s of waiting; put the reference at 15. */
	schedule_delayed_work(&splat_put_work, 15 * HZ);
	unregister_netdev(dev);
	free_netdev(dev);
	splat_dev = NULL;
	return 0;
}

static int splat_trigger(const char *val, const struct kernel_param *kp)
{
	if (sysfs_streq(val, "lockdep")) {
		splat_lockdep();
		return 0;
	}
	if (sysfs_streq(val, "leak"))
		return splat_leak();
	if (sysfs_streq(val, "netdev"))
		return splat_netdev();
	return -EINVAL;
}

static const struct kernel_param_ops splat_trigger_ops = {
	.set = splat_trigger,
};
module_param_cb(trigger, &splat_trigger_ops, NULL, 0200);
MODULE_PARM_DESC(trigger, "lockdep, leak or netdev: provoke that report");

static void __exit splat_exit(void)
{
	cancel_delayed_work_sync(&splat_put_work);
}
module_exit(splat_exit);

static int __init splat_init(void)
{
	return 0;
}
module_init(splat_init);

MODULE_DESCRIPTION("provoke debug-kernel reports for txtimeout's kmsg fixtures");
MODULE_LICENSE("GPL");
